// The PCP client's keepalive: WebSocket pings at an interval, and the detection of a dead
// connection (pongs missed in a row), which is then terminated so that the transport reconnects.
import type { WebSocket } from 'ws';

export const DEFAULT_PING_INTERVAL_MS = 120_000;
/** Missed pongs in a row after which the connection is taken for dead. */
export const DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS = 1;

/**
 * WebSocket pings every `intervalMs`; after `allowedMisses` unanswered in a row the connection is
 * taken for dead (`onDead`, then terminated). Clear the returned timer when the socket closes.
 */
export function keepAlive(ws: WebSocket, intervalMs: number, allowedMisses: number, onDead: (missed: number) => void): NodeJS.Timeout {
  let awaitingPong = false;
  let missed = 0;
  ws.on('pong', () => {
    awaitingPong = false;
    missed = 0;
  });
  return setInterval(() => {
    if (awaitingPong && ++missed >= allowedMisses) {
      onDead(missed);
      ws.terminate();
      return;
    }
    awaitingPong = true;
    ws.ping();
  }, intervalMs);
}
