// Small network helpers shared by tests and benchmarks.
import { once } from 'node:events';
import { createServer } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1 (callers retry if it is taken meanwhile). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}
