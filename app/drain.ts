// Closing connections at shutdown without cutting a review. Node's closeIdleConnections() skips
// connections that completed TLS but never sent a request (checked on Node 24), and the API server
// keeps such pooled connections open, so server.close() would wait for them until the shutdown
// timeout. This tracks every connection and which ones have a request in flight.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';

export interface ConnectionTracker {
  /** Destroys every connection that has no request in flight; returns how many are left. */
  closeIdle(): number;
}

export function trackConnections(server: HttpServer | HttpsServer, secure: boolean): ConnectionTracker {
  const open = new Set<Socket>();
  const busy = new Map<Socket, number>();
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    response.once('close', () => {
      const left = (busy.get(socket) ?? 1) - 1;
      if (left > 0) busy.set(socket, left);
      else busy.delete(socket);
    });
  });
  return {
    closeIdle() {
      for (const socket of open) if (!busy.has(socket)) socket.destroy();
      return open.size;
    },
  };
}
