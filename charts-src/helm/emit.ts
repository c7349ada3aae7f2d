// YAML emitter for helm templates: plain data becomes YAML, tokens become Go template expressions
// (see charts-src/binding.ts), `when` markers become if-blocks. Written out by hand because a YAML
// library cannot place `{{- ... }}` lines; the data it sees is plain JSON from ApiObject.toJson().
import { stringify } from 'yaml';
import { WHEN, type Binding, type Guard } from '../binding.ts';

function scalar(value: unknown, b: Binding): string {
  const token = b.whole(value);
  if (token) {
    if (token.kind === 'string') return `{{ ${token.expr} | quote }}`;
    if (token.kind === 'scalar') return `{{ ${token.expr} }}`;
    throw new Error(`a ${token.kind} value (${token.expr}) cannot stand in a list`);
  }
  if (typeof value === 'string' && b.hasToken(value)) return b.inline(JSON.stringify(value));
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

const isMarker = (value: unknown): value is { [WHEN]: string; item: unknown } =>
  typeof value === 'object' && value !== null && WHEN in value;

const isCollection = (value: unknown): value is object => typeof value === 'object' && value !== null;

function emitSplice(expr: string, indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  out.push(`${pad}{{- with ${expr} }}`, `${pad}{{- toYaml . | nindent ${indent} }}`, `${pad}{{- end }}`);
}

function emitValue(key: string, value: unknown, indent: number, b: Binding, out: string[], prefix: string): void {
  const pad = ' '.repeat(indent);
  const token = b.whole(value);
  const keyToken = b.whole(key);
  if (keyToken?.kind === 'splice') {
    emitSplice(keyToken.expr, indent, out);
  } else if (token?.kind === 'block') {
    out.push(`${prefix}${key}:`, `${pad}  {{- toYaml (${token.expr}) | nindent ${indent + 2} }}`);
  } else if (token?.kind === 'optional-block') {
    out.push(`${pad}{{- with ${token.expr} }}`, `${prefix}${key}:`, `${pad}  {{- toYaml . | nindent ${indent + 2} }}`, `${pad}{{- end }}`);
  } else if (token?.kind === 'raw') {
    out.push(`${prefix}${key}:`, ...token.expr.split('\n').map((line) => `${pad}  ${line}`));
  } else if (isCollection(value) && Object.keys(value).length > 0) {
    out.push(`${prefix}${key}:`);
    emitNode(value, Array.isArray(value) ? indent : indent + 2, b, out);
  } else {
    out.push(`${prefix}${key}: ${isCollection(value) ? (Array.isArray(value) ? '[]' : '{}') : scalar(value, b)}`);
  }
}

function emitNode(node: object, indent: number, b: Binding, out: string[]): void {
  const pad = ' '.repeat(indent);
  if (Array.isArray(node)) {
    for (const element of node) {
      const token = b.whole(element);
      if (token?.kind === 'splice') {
        emitSplice(token.expr, indent, out);
      } else if (isMarker(element)) {
        out.push(`${pad}{{- if ${element[WHEN]} }}`);
        emitItem(element.item, indent, b, out);
        out.push(`${pad}{{- end }}`);
      } else {
        emitItem(element, indent, b, out);
      }
    }
    return;
  }
  for (const [key, value] of Object.entries(node)) emitValue(b.whole(key) ? key : yamlKey(key), value, indent, b, out, pad);
}

function emitItem(item: unknown, indent: number, b: Binding, out: string[]): void {
  const pad = ' '.repeat(indent);
  if (!isCollection(item) || Object.keys(item).length === 0) {
    out.push(`${pad}- ${isCollection(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item, b)}`);
    return;
  }
  if (Array.isArray(item)) throw new Error('nested lists are not used in the chart');
  const lines: string[] = [];
  emitNode(item, indent + 2, b, lines);
  // The first key line carries the dash.
  const first = lines.findIndex((line) => !line.trimStart().startsWith('{{'));
  lines[first] = `${pad}- ${lines[first]!.slice(indent + 2)}`;
  out.push(...lines);
}

function yamlKey(key: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(key) && !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(key) ? key : JSON.stringify(key);
}

/** One template file: the object, under its guard. */
export function emitTemplate(object: Record<string, unknown>, b: Binding, guard: Guard | undefined): string {
  const body: string[] = [];
  emitNode(object, 0, b, body);
  if (!guard) return `${body.join('\n')}\n`;
  if (guard.kind === 'if') return `{{- if ${guard.expr} }}\n${body.join('\n')}\n{{- end }}\n`;
  return `{{- range ${guard.variable} := ${guard.expr} }}\n---\n${body.join('\n')}\n{{- end }}\n`;
}
