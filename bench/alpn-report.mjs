// Preloaded into a Node server of the cluster benchmark (NODE_OPTIONS=--import=bench/alpn-report.mjs,
// ALPN_REPORT_FILE=FILE): appends the ALPN protocol each TLS connection negotiated, as the server
// saw it, one line per connection (`none` without ALPN). The Go peers do the same (peer.Main).
// Plain JavaScript, nothing else touched: the server's own code runs as it does in production.
import { appendFileSync } from 'node:fs';
import tls from 'node:tls';

const file = process.env.ALPN_REPORT_FILE;
if (file) {
  const emit = tls.Server.prototype.emit;
  tls.Server.prototype.emit = function (event, ...args) {
    if (event === 'secureConnection') appendFileSync(file, `${args[0].alpnProtocol || 'none'}\n`);
    return emit.call(this, event, ...args);
  };
}
