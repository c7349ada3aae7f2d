// How `pando` speaks: colour and symbols on a terminal only, plain words when piped or with
// NO_COLOR (https://no-color.org), and errors that always carry a fix.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError, detectStyle, formatError, mark, PLAIN } from '../../app/cli/output.ts';

describe('output style', () => {
  it('a terminal gets colour and symbols', () => {
    const style = detectStyle({ isTTY: true }, { TERM: 'xterm-256color' });
    assert.deepEqual(style, { color: true, symbols: true });
    assert.equal(mark(style, 'ok'), '\u001b[32m✓\u001b[39m');
    assert.equal(mark(style, 'fail'), '\u001b[31m✗\u001b[39m');
  });

  it('a pipe, NO_COLOR or TERM=dumb get plain words', () => {
    for (const [stream, env] of [
      [{ isTTY: false }, {}],
      [{}, { TERM: 'xterm' }],
      [{ isTTY: true }, { NO_COLOR: '1' }],
      [{ isTTY: true }, { TERM: 'dumb' }],
    ] as const) {
      const style = detectStyle(stream, env);
      assert.deepEqual(style, PLAIN, JSON.stringify([stream, env]));
    }
    assert.equal(mark(PLAIN, 'fail'), 'FAIL');
    assert.equal(mark(PLAIN, 'ok'), 'ok  ');
  });

  it('an empty NO_COLOR does not count; FORCE_COLOR colours a pipe but keeps words', () => {
    assert.equal(detectStyle({ isTTY: true }, { NO_COLOR: '' }).color, true);
    assert.deepEqual(detectStyle({ isTTY: false }, { FORCE_COLOR: '1' }), { color: true, symbols: false });
    assert.equal(detectStyle({ isTTY: false }, { FORCE_COLOR: '0' }).color, false);
  });

  it('errors: what went wrong, then the fix', () => {
    assert.equal(formatError(PLAIN, new CliError('no cluster', 'set KUBECONFIG')), 'pando: error: no cluster\n  fix: set KUBECONFIG\n');
    assert.equal(new CliError('x').exitCode, 2, '"could not run" is 2; 1 is kept for doctor\'s findings');
  });
});
