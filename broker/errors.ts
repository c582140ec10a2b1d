// The broker's error catalogue. The refusals of single messages (metrics labels and the codes sent
// with error_message) live in protocol/broker-errors.ts, since the PCP client reads the same codes;
// this module adds the refusals of connections.
export { RefusalReason, refusalForProtocolError } from '../protocol/broker-errors.ts';

export const CONNECTION_REFUSAL_REASONS = [
  'no_certificate',
  'untrusted_certificate',
  'bad_common_name',
  'bad_path',
  'reserved_type',
  'not_a_controller',
  'max_connections',
  /** PCP v1: the associate_request was refused (its reason is in the associate_response). */
  'association_refused',
  /** PCP v1: no successful association within association-timeout. */
  'association_timeout',
  /** The TLS handshake did not end within tls-handshake-timeout (the connection is closed). */
  'handshake_timeout',
  /** No complete HTTP (upgrade) request within upgrade-timeout of the TLS handshake (closed). */
  'upgrade_timeout',
  /** Reset at accept: its source address held max-pending-per-source pending connections. */
  'per_source',
  /** Reset at accept: the broker held as many connections as its open-file limit allows. */
  'file_limit',
  /** Reset before TLS: no handshake slot within handshake-queue-timeout (or the queue was full). */
  'busy',
] as const;
export type ConnectionRefusal = (typeof CONNECTION_REFUSAL_REASONS)[number];

/** Stable code in the warn log line of a message whose handling threw unexpectedly (the session lives on). */
export const BROKER_HANDLER_FAILED = 'broker/handler-failed';
