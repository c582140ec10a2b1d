// What every face reads of a request: the authenticated principal (set by the server's onRequest
// hook), and the type of the app the faces register on.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../auth.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- HTTPS server and pino logger generics
export type AnyFastify = FastifyInstance<any, any, any, any, any>;

export function principal(req: FastifyRequest): Principal {
  return (req as FastifyRequest & { principal: Principal }).principal;
}
