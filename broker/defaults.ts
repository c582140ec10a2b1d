// Defaults of the broker, as data. Units are in the names; config keys keep pcp-broker's names.
import type { FromSchema } from 'json-schema-to-ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../protocol/json-depth.ts';
import { SESSION_REPLACED_CLOSE_CODE } from '../protocol/message-types.ts';
import type { brokerConfigSchema } from '../schemas/broker-config.ts';

export type BrokerConfig = FromSchema<typeof brokerConfigSchema>;

export const DEFAULT_BROKER_PORT = 8142;
export const DEFAULT_BROKER_HOST = '0.0.0.0';
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** 0 means unlimited. */
export const DEFAULT_MAX_CONNECTIONS = 0;
export const DEFAULT_IDLE_TIMEOUT_MS = 360_000;
/** How often the broker pings each session; a session that has not answered the last ping is dropped. */
export const DEFAULT_PING_INTERVAL_MS = 60_000;
/** Bytes queued towards one client beyond which it is a slow consumer and is disconnected. */
export const DEFAULT_MAX_SEND_BUFFER_BYTES = 64 * 1024 * 1024;
/** Inventory changes are sent to subscribers in batches, at most once per this interval. */
export const DEFAULT_INVENTORY_UPDATE_INTERVAL_MS = 1_000;
/** A TLS handshake must end within this from its start (an absolute deadline, not an idle one). */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * After its TLS handshake, a connection must complete its HTTP request (the WebSocket upgrade, or
 * a status or metrics request) within this, or it is destroyed: a client that opens TLS and then
 * trickles an incomplete request holds nothing for long.
 */
export const DEFAULT_UPGRADE_TIMEOUT_MS = 10_000;
/**
 * Pending connections (accepted, not yet upgraded: waiting for a handshake slot, in the TLS
 * handshake or before a complete upgrade request) one source address may hold; more are reset at
 * accept. High enough for a NATed site or a test fleet on one address reconnecting at once.
 * 0 means unlimited.
 */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 1024;
/**
 * With `max-connections` set, pending connections count against it: a connection is reset at
 * accept once sessions, unassociated v1 connections and pending connections reach
 * max-connections plus this many. The few beyond let a full broker still take an agent that
 * replaces its own session, or answer a new one with 1011 instead of a reset.
 */
export const MAX_CONNECTIONS_PENDING_RESERVE = 16;
/** A fabric broker PINGs its Redis this often; the answer is its health in /status and /metrics. */
export const DEFAULT_HEALTH_PROBE_INTERVAL_MS = 1_000;
/**
 * TLS handshakes in progress at once. More connections wait, unread (costing nothing), in a
 * queue; a storm of reconnecting agents then gets the broker's full handshake rate instead of
 * thousands of handshakes that all crawl and all time out. 0 means unlimited.
 */
export const DEFAULT_MAX_CONCURRENT_HANDSHAKES = 64;
/**
 * How long a connection may wait for a handshake slot before it is refused (reset before the
 * TLS handshake: the cheapest refusal, which clients take as "busy, retry soon"). Shorter than
 * the time Baton's client waits for a broker that accepted it to start the handshake (20 s),
 * so that the broker never works on a handshake that its client has given up on. A waiting
 * connection costs a socket and nothing else; a refused one costs its client a new attempt.
 */
export const DEFAULT_HANDSHAKE_QUEUE_TIMEOUT_MS = 15_000;
/** Connections waiting for a handshake slot, at most; beyond, they are refused at once. */
export const MAX_HANDSHAKE_QUEUE_LENGTH = 50_000;
/** A PCP v1 connection must complete its association within this, or it is closed. */
export const DEFAULT_ASSOCIATION_TIMEOUT_MS = 10_000;
/** The time to live (`expires`) of a v2 message delivered to a PCP v1 client. */
export const DEFAULT_MESSAGE_TTL_MS = 60_000;
/** PXP requests from v2 to v1 clients remembered, to give v1 replies their `in_reply_to`. */
export const MAX_V1_PENDING_REPLIES = 100_000;
export const DEFAULT_CONTROLLER_CNS: readonly string[] = ['orchestrator'];
/** Broker processes sharing the port; 1 runs the broker in this process, with no supervisor. */
export const DEFAULT_BROKER_WORKERS = 1;

export const BROKER_DEFAULTS = {
  host: DEFAULT_BROKER_HOST,
  port: DEFAULT_BROKER_PORT,
  'controller-cns': [...DEFAULT_CONTROLLER_CNS],
  'max-message-size': DEFAULT_MAX_MESSAGE_BYTES,
  'max-connections': DEFAULT_MAX_CONNECTIONS,
  'idle-timeout': DEFAULT_IDLE_TIMEOUT_MS,
  'ping-interval': DEFAULT_PING_INTERVAL_MS,
  'max-send-buffer-size': DEFAULT_MAX_SEND_BUFFER_BYTES,
  'inventory-update-interval': DEFAULT_INVENTORY_UPDATE_INTERVAL_MS,
  'tls-handshake-timeout': DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  'upgrade-timeout': DEFAULT_UPGRADE_TIMEOUT_MS,
  'max-pending-per-source': DEFAULT_MAX_PENDING_PER_SOURCE,
  'max-concurrent-handshakes': DEFAULT_MAX_CONCURRENT_HANDSHAKES,
  'handshake-queue-timeout': DEFAULT_HANDSHAKE_QUEUE_TIMEOUT_MS,
  'association-timeout': DEFAULT_ASSOCIATION_TIMEOUT_MS,
  'message-ttl': DEFAULT_MESSAGE_TTL_MS,
  'log-level': 'info',
  'max-message-depth': DEFAULT_MAX_MESSAGE_DEPTH,
  workers: String(DEFAULT_BROKER_WORKERS),
} as const satisfies Partial<BrokerConfig>;

/** WebSocket close codes the broker uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  messageTooBig: 1009,
  /** PCP v1: the association was refused. */
  policyViolation: 1008,
  serverError: 1011,
  /** A newer session for the same URI took over. */
  replaced: SESSION_REPLACED_CLOSE_CODE,
  /** The client did not read what was sent to it fast enough. */
  slowConsumer: 4001,
} as const;
