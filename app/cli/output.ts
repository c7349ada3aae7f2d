// How the command line speaks: colour and symbols on a terminal, plain words when piped or with
// NO_COLOR, and one error type whose message always says what to do next.

import { styleText } from 'node:util';

export interface Style {
  /** ANSI colours. */
  readonly color: boolean;
  /** ✓ ✗ ! instead of ok / FAIL / warn. */
  readonly symbols: boolean;
}

export const PLAIN: Style = Object.freeze({ color: false, symbols: false });

type Env = Readonly<Record<string, string | undefined>>;

/** https://no-color.org: any non-empty NO_COLOR turns colour off; TERM=dumb too; FORCE_COLOR turns it on. */
export function detectStyle(stream: { isTTY?: boolean }, env: Env = process.env): Style {
  const tty = stream.isTTY === true;
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0';
  const color = !noColor && (forced || (tty && env.TERM !== 'dumb'));
  return { color, symbols: tty && !noColor && env.TERM !== 'dumb' };
}

export type Status = 'ok' | 'warn' | 'fail' | 'info';

const SYMBOL: Record<Status, string> = { ok: '✓', warn: '!', fail: '✗', info: '·' };
const WORD: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', info: 'info' };
const COLOUR: Record<Status, 'green' | 'yellow' | 'red' | 'gray'> = { ok: 'green', warn: 'yellow', fail: 'red', info: 'gray' };

// Control characters (C0, DEL, C1), format characters (bidi overrides, zero-width) and line
// separators: a value read from the cluster that holds them could move the cursor, retitle the
// window, hide text or forge a line of output on an administrator's terminal.
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

function escapeCodePoint(ch: string): string {
  const code = ch.codePointAt(0)!;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every character that a terminal would act on written as a visible escape (`\x1b`). */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, escapeCodePoint);
}

/**
 * JSON.stringify's text with the unsafe characters it leaves raw (DEL, C1, format characters) as
 * `\uXXXX` escapes; it already escapes C0 inside strings, and its own newlines are layout.
 */
export function jsonSafe(json: string): string {
  return json.replace(UNSAFE, (ch) =>
    ch === '\n' ? ch : Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

export function paint(style: Style, format: Parameters<typeof styleText>[0], text: string): string {
  return style.color ? styleText(format, text, { validateStream: false }) : text;
}

export function mark(style: Style, status: Status): string {
  return paint(style, COLOUR[status], style.symbols ? SYMBOL[status] : WORD[status]);
}

/**
 * An error the user can act on: `message` says what went wrong, `hint` what to do. Exit code 2 is
 * "could not run" (usage, configuration, cluster unreachable); 1 is kept for "found a problem".
 */
export class CliError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  constructor(message: string, hint?: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

export function formatError(style: Style, err: CliError): string {
  const head = `${paint(style, ['bold', 'red'], 'pando: error:')} ${terminalSafe(err.message)}`;
  return err.hint ? `${head}\n  ${paint(style, 'yellow', 'fix:')} ${terminalSafe(err.hint)}\n` : `${head}\n`;
}
