// Closing connections at shutdown without cutting a review. Node's closeIdleConnections() skips
// connections that completed TLS but never sent a request (checked on Node 24), and the API server
// keeps such pooled connections open, so server.close() would wait for them until the shutdown
// timeout; a TCP connection that never starts TLS is not even an HTTP connection to Node. This
// tracks every TCP connection from its first moment (`connection`, before any TLS) and which ones
// have a request in flight, and, once draining, answers every request with `connection: close` so
// clients stop reusing their connections to this replica.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

export interface ConnectionTracker {
  /** From now on every answer says `connection: close` (answers not yet sent included). */
  startDraining(): void;
  /** Destroys every connection that has no request in flight; returns how many are left. */
  closeIdle(): number;
}

// A TLS connection's request arrives on the TLSSocket, not on the TCP socket `connection` gave us;
// both have the same remote address and port, which names the TCP connection.
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

export function trackConnections(server: HttpServer | HttpsServer): ConnectionTracker {
  const open = new Map<string, Socket>();
  const busy = new Map<string, number>();
  const unsent = new Set<ServerResponse>();
  let draining = false;
  server.on('connection', (socket: Socket) => {
    const key = connectionKey(socket);
    open.set(key, socket);
    socket.once('close', () => {
      if (open.get(key) === socket) open.delete(key);
      busy.delete(key);
    });
  });
  // Before fastify's listener, so the header is set before any answer can be written.
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const key = connectionKey(request.socket);
    busy.set(key, (busy.get(key) ?? 0) + 1);
    if (draining) response.setHeader('connection', 'close');
    else unsent.add(response);
    response.once('close', () => {
      unsent.delete(response);
      const left = (busy.get(key) ?? 1) - 1;
      if (left > 0) busy.set(key, left);
      else busy.delete(key);
    });
  });
  return {
    startDraining() {
      draining = true;
      for (const response of unsent) if (!response.headersSent) response.setHeader('connection', 'close');
      unsent.clear();
    },
    closeIdle() {
      for (const [key, socket] of open) if (!busy.has(key)) socket.destroy();
      return open.size;
    },
  };
}
