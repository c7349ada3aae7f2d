// How a construct says "this field comes from a value". One construct tree serves two outputs:
// - plain (cdk8s synth): every value is resolved in TypeScript and objects are plain manifests;
// - helm (npm run chart): fields hold tokens that charts-src/helm/emit.ts turns into Go template
//   expressions, and optional objects carry an `if` or `range` guard.
// Each call site gives the TypeScript result and the template expression side by side; the chart
// test renders both with the same values and requires the same objects, so they cannot drift.
import type { ApiObject } from 'cdk8s';
import type { Values } from './values.ts';

export type TokenKind = 'string' | 'scalar' | 'block' | 'optional-block' | 'raw' | 'splice';
export interface TokenDef {
  readonly expr: string;
  readonly kind: TokenKind;
}

/** A list item that is only rendered when `expr` holds (helm mode). */
export interface WhenMarker {
  readonly [WHEN]: string;
  readonly item: unknown;
}
export const WHEN = '@@when';

export type Guard = { readonly kind: 'if'; readonly expr: string } | { readonly kind: 'range'; readonly variable: string; readonly expr: string };

const TOKEN = /@@T(\d+)@@/g;

export class Binding {
  readonly tokens = new Map<string, TokenDef>();
  readonly guards = new Map<ApiObject, Guard>();
  private next = 0;

  /** The values (in helm mode: the defaults, so constructs validate real data). */
  readonly values: Values;
  readonly helm: boolean;

  constructor(values: Values, helm: boolean) {
    this.values = values;
    this.helm = helm;
  }

  private token(expr: string, kind: TokenKind): string {
    const name = `@@T${this.next++}@@`;
    this.tokens.set(name, { expr, kind });
    return name;
  }

  /** A string field; a token may also be embedded in a longer string. */
  str(expr: string, plain: string): string {
    return this.helm ? this.token(expr, 'string') : plain;
  }

  /** A number or boolean field. */
  scalar<T extends number | boolean>(expr: string, plain: T): T {
    return this.helm ? (this.token(expr, 'scalar') as unknown as T) : plain;
  }

  /** A whole map or list, rendered with toYaml. */
  block<T>(expr: string, plain: T): T {
    return this.helm ? (this.token(expr, 'block') as unknown as T) : plain;
  }

  /** A map or list that is left out when empty (cdk8s drops empty ones; helm uses `with`). */
  optionalBlock<T>(expr: string, plain: T): T | undefined {
    if (this.helm) return this.token(expr, 'optional-block') as unknown as T;
    return isEmpty(plain) ? undefined : plain;
  }

  /**
   * Entries of a user map merged into a map we build (labels): in helm mode one key that the
   * emitter turns into `{{- with expr }}{{ toYaml . }}`; plain: the entries themselves.
   */
  spliceMap(expr: string, plain: Readonly<Record<string, string>>): Record<string, string> {
    if (!this.helm) return { ...plain };
    const name = this.token(expr, 'splice');
    return { [name]: name };
  }

  /** Items of a user list appended to a list we build (env), as spliceMap does for maps. */
  spliceList<T>(expr: string, plain: readonly T[]): T[] {
    return this.helm ? [this.token(expr, 'splice') as unknown as T] : [...plain];
  }

  /** A field whose template is written out by hand (a few lines of if/else). */
  raw<T>(template: string, plain: T): T {
    return this.helm ? (this.token(template, 'raw') as unknown as T) : plain;
  }

  /** A list item that exists when `expr` holds. */
  when<T>(expr: string, plain: boolean, item: T): T | undefined {
    if (this.helm) return { [WHEN]: expr, item } as unknown as T;
    return plain ? item : undefined;
  }

  /** Whether to build an optional object; in helm mode it is always built and guarded. */
  include(expr: string, plain: boolean): boolean {
    return this.helm || plain;
  }

  guard(object: ApiObject, guard: Guard): void {
    if (this.helm) this.guards.set(object, guard);
  }

  /** Replaces tokens embedded in a string with `{{ expr }}`. */
  inline(text: string): string {
    return text.replace(TOKEN, (name) => `{{ ${this.tokens.get(name)!.expr} }}`);
  }

  /** The token a whole scalar is, if it is one. */
  whole(value: unknown): TokenDef | undefined {
    return typeof value === 'string' ? this.tokens.get(value) : undefined;
  }

  hasToken(text: string): boolean {
    TOKEN.lastIndex = 0;
    return TOKEN.test(text);
  }
}

export function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.keys(value).length === 0;
  return false;
}

/** Drops the items a `when` left out (plain mode). */
export function present<T>(items: (T | undefined)[]): T[] {
  return items.filter((item): item is T => item !== undefined);
}
