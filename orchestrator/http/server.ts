// The orchestrator's HTTPS server (fastify): what all faces share (TLS, the JSON body parser,
// token authentication on every API route, Chef signature checks), each face as a plugin under
// its prefix with its own error format, client certificate authentication for task file
// downloads (agents hold no token), status and metrics, and the web console (its files need no
// token; its API does).
import { createReadStream } from 'node:fs';
import fastify, { LogController } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/log.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsJsonDepth } from '../../protocol/json-depth.ts';
import type { TokenStore } from '../auth.ts';
import { ChefAuthError, ChefAuthErrorCode, isChefSigned, verifyChefRequest } from '../chef/signing.ts';
import type { TaskCatalog } from '../tasks/catalog.ts';
import { TASK_FILE_PATH_PREFIX } from '../tasks/catalog.ts';
import { projectPath } from '../../lib/paths.ts';
import { CHEF_PREFIX, chefFace, type ChefFaceContext } from './chef/routes.ts';
import { CONSOLE_PREFIX, consoleFace, isConsoleFile, type ConsoleFaceContext } from './console/routes.ts';
import { apiError, ApiErrorCode, sendChefError, sendError, sendNomadError } from './errors.ts';
import { errorHandlerOf, MAX_BODY_BYTES, notFound, type ErrorSender } from './face.ts';
import { NOMAD_PREFIX, nomadFace, type NomadFaceContext } from './nomad/routes.ts';
import { PUPPET_PREFIX, type PuppetFaceContext } from './puppet/context.ts';
import { puppetFace } from './puppet/routes.ts';
import { decorateRequests, type AnyFastify } from './request.ts';
import { refusalOf } from './identifiers.ts';
import { guardListener, type ListenerLimits, type PendingConnections } from './listener.ts';
import type { ConnectionRefusal } from '../metrics.ts';
import { endAllStreams } from './sse.ts';

export { MAX_BODY_BYTES };
const OPEN_PATHS = new Set(['/status/v1/services', '/metrics']);

export interface HttpOptions extends PuppetFaceContext {
  tls: { ca: Buffer; cert: Buffer; key: Buffer; crl?: Buffer };
  tokens: TokenStore;
  log: Logger;
  /** The status service's documents by service name; 200 when every one is `running`, else 503. */
  status: () => Promise<Record<string, { state: string }>>;
  metrics: () => Promise<{ contentType: string; text: string }>;
  chef: ChefFaceContext;
  nomad: NomadFaceContext;
  /** The web console: the API's Redis connection; its files default to dist/console. */
  console: Omit<ConsoleFaceContext, 'store' | 'dir'> & { dir?: string };
  /** Deepest nesting of a JSON body (`max-message-depth`); default DEFAULT_MAX_MESSAGE_DEPTH. */
  maxMessageDepth?: number;
  /** Seconds a Chef-signed request's X-Ops-Timestamp may be off (`chef.clock-skew`). */
  chefClockSkewS: number;
  /** The listener's deadlines and budgets (listener.ts), each refusal counted; `guarded` gets the pending book. */
  listener?: ListenerLimits & { requestTimeoutMs: number; refused: (reason: ConnectionRefusal) => void; guarded?: (pending: PendingConnections) => void };
}

/** Node checks its headersTimeout and requestTimeout this often at most (its default is 30 s). */
const MAX_CONNECTIONS_CHECK_MS = 1_000;
const MIN_CONNECTIONS_CHECK_MS = 10;

/**
 * Whether the peer presented a certificate signed by this CA. `authorized` alone is not enough:
 * a TLS 1.3 connection that resumes a session made without a client certificate reads as
 * `authorized` with no peer certificate (nodejs/node#35317); the broker checks both too.
 */
export function hasTrustedClientCert(socket: TLSSocket): boolean {
  return socket.authorized && Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
}

/**
 * The face a request's path is under, for what is answered before (or without) a route: the
 * router's own refusals and paths no face serves. Within a face, its plugin's handlers answer.
 */
function errorSender(url: string): ErrorSender {
  if (url.startsWith('/organizations/')) return sendChefError;
  if (url.startsWith('/v1/')) return sendNomadError;
  return sendError;
}

export function createHttpServer(opts: HttpOptions): AnyFastify {
  const l = opts.listener;
  // Node refuses a headersTimeout above requestTimeout; both bound a request only until it is read.
  const headersTimeout = l ? Math.min(l.headersTimeoutMs, l.requestTimeoutMs) : undefined;
  const deadlines = l && headersTimeout !== undefined
    // requestTimeout here too: Node checks headersTimeout against it when the server is made, before fastify sets its own.
    ? { handshakeTimeout: l.handshakeTimeoutMs, headersTimeout, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: Math.max(MIN_CONNECTIONS_CHECK_MS, Math.min(MAX_CONNECTIONS_CHECK_MS, Math.floor(headersTimeout / 4))) }
    : {};
  const app = fastify({
    https: { ...opts.tls, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', ...deadlines },
    ...(l ? { requestTimeout: l.requestTimeoutMs } : {}),
    loggerInstance: opts.log,
    // No line per request: errors are logged where they are handled.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    // Requests the router itself refuses (bad percent-encoding, an over-long path segment) answer
    // in the face's format too.
    frameworkErrors: (err, req, reply) => {
      const e = err as Error & { code?: string };
      const code = e.code === 'FST_ERR_MAX_PARAM_LENGTH' ? ApiErrorCode.uriTooLong : ApiErrorCode.validation;
      errorSender(req.url)(reply, apiError(code, `the request path is invalid: ${e.message}`));
    },
  });
  decorateRequests(app);
  if (l) {
    const pending = guardListener(app.server, l, l.refused, opts.log);
    l.guarded?.(pending);
  }

  // JSON bodies: size (bodyLimit, per route where set) and depth are checked before parsing, so
  // that no parser, validator or serializer ever recurses over hostile nesting. `__proto__` and
  // `constructor` keys are refused as fastify's own parser refuses them.
  const maxDepth = opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH;
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (exceedsJsonDepth(body as string, maxDepth)) {
      done(apiError(ApiErrorCode.validation, `the body nests arrays or objects deeper than ${maxDepth} levels (max-message-depth ${maxDepth})`, { max_depth: maxDepth }), undefined);
      return;
    }
    // Kept for the Chef face's signature check (X-Ops-Content-Hash is over the bytes as sent).
    req.rawBody = body as string;
    parseJson(req, body as string, done);
  });

  // Event streams never end by themselves: a stopping server ends them, or its close would wait for them.
  app.addHook('preClose', async () => endAllStreams());

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!;
    if (OPEN_PATHS.has(path) || path.startsWith('/status/v1/services/') || isConsoleFile(path)) return;
    if (path.startsWith(`${TASK_FILE_PATH_PREFIX}/`)) {
      const socket = req.socket as TLSSocket;
      if (!hasTrustedClientCert(socket)) throw apiError(ApiErrorCode.notPermitted, 'task files are served to agents presenting a certificate signed by this CA');
      return;
    }
    const token = req.headers['x-authentication'];
    if (token === undefined && path.startsWith('/organizations/') && isChefSigned(req.headers)) {
      // Chef's request signing covers the body: checked once it is read (preValidation), before any handler.
      req.chefSigned = true;
      return;
    }
    const principal = opts.tokens.authenticate(Array.isArray(token) ? token[0] : token);
    if (!principal) {
      const what = path.startsWith('/organizations/') ? 'a token in the X-Authentication header or a Chef signature (X-Ops-* headers)' : 'a token in the X-Authentication header';
      throw apiError(ApiErrorCode.unauthenticated, token ? 'the token is not valid' : `this route requires ${what}`);
    }
    req.principal = principal;
  });
  // Every path segment and path identifier of the faces, checked against its grammar before the
  // body is read or any handler runs: a bad one is the face's 400 (by the path, as for paths no
  // route matches), with nothing done.
  app.addHook('onRequest', async (req, reply) => {
    const refusal = refusalOf(req);
    if (refusal) return errorSender(req.url)(reply, refusal);
  });

  app.addHook('preValidation', async (req) => {
    if (!req.chefSigned) return;
    const path = req.url.split('?')[0]!;
    const org = path.split('/')[2] ?? '';
    const orgs = opts.chef.orgs;
    if (!orgs.exists(org)) throw apiError(ApiErrorCode.notFound, `no organization ${JSON.stringify(org)}`, { org });
    try {
      const { userid } = verifyChefRequest(
        { method: req.method, path, headers: req.headers, body: req.rawBody ?? '' },
        { nowMs: Date.now(), skewS: opts.chefClockSkewS, publicKeyFor: (client) => orgs.publicKey(org, client) },
      );
      req.principal = orgs.clientPrincipal(org, userid);
    } catch (err) {
      // An API version the server does not speak is 406, as Chef Server answers it; every other refusal is 401.
      if (err instanceof ChefAuthError) throw apiError(err.code === ChefAuthErrorCode.unsupportedApiVersion ? ApiErrorCode.notAcceptable : ApiErrorCode.unauthenticated, err.message, { reason: err.code });
      throw err;
    }
  });

  // Hooks added above reach every plugin registered below; each face sets its own error,
  // not-found and validation handling inside its plugin.
  app.setErrorHandler(errorHandlerOf(sendError));
  app.setNotFoundHandler((req, reply) => errorSender(req.url)(reply, notFound(req)));

  app.register(puppetFace, { ...opts, prefix: PUPPET_PREFIX });
  app.register(chefFace, { ...opts.chef, prefix: CHEF_PREFIX });
  app.register(nomadFace, { ...opts.nomad, prefix: NOMAD_PREFIX });
  app.register(consoleFace, { store: opts.store, redis: opts.console.redis, dir: opts.console.dir ?? projectPath('dist', 'console'), prefix: CONSOLE_PREFIX });

  app.get(`${TASK_FILE_PATH_PREFIX}/:module/:file`, async (req, reply) => {
    const { module, file } = req.params as { module: string; file: string };
    const environment = (req.query as { environment?: string }).environment ?? 'production';
    const path = (opts.catalog as TaskCatalog).resolveFile(environment, module, file);
    if (!path) throw apiError(ApiErrorCode.notFound, `no task file ${module}/${file} in environment ${environment}`);
    return reply.type('application/octet-stream').send(createReadStream(path));
  });

  // As Puppet's status service (and the broker's): 200 if and only if the service is running, else 503.
  app.get('/status/v1/services', async (_req, reply) => {
    const all = await opts.status();
    return reply.code(Object.values(all).every((s) => s.state === 'running') ? 200 : 503).send(all);
  });
  app.get('/status/v1/services/:service', async (req, reply) => {
    const all = await opts.status();
    const one = all[(req.params as { service: string }).service];
    if (!one) throw apiError(ApiErrorCode.notFound, `no service named ${JSON.stringify((req.params as { service: string }).service)}; services: ${Object.keys(all).join(', ')}`);
    return reply.code(one.state === 'running' ? 200 : 503).send(one);
  });
  app.get('/metrics', async (_req, reply) => {
    const m = await opts.metrics();
    return reply.type(m.contentType).send(m.text);
  });
  return app;
}
