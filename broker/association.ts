// PCP v1 session association (pcp-specifications 1.0, association.md): the pure decision on an
// `associate_request`. The identity is the certificate's; the request's sender must match it.
import type { GlobMatcher } from '../lib/glob.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import type { EnvelopeV1 } from '../protocol/pcp-v1.ts';
import { BROKER_URI, isValidClientType, parseUri, SERVER_CLIENT_TYPE } from '../protocol/uri.ts';
import { CONTROLLER_TYPE } from './authz.ts';

/** Why an association was refused: the `reason` of the unsuccessful `associate_response`. */
export const AssociationRefusal = {
  senderMismatch: 'sender_mismatch',
  badClientType: 'bad_client_type',
  reservedType: 'reserved_type',
  pathTypeMismatch: 'path_type_mismatch',
  notAController: 'not_a_controller',
  notToBroker: 'not_to_broker',
} as const;
export type AssociationRefusal = (typeof AssociationRefusal)[keyof typeof AssociationRefusal];

export type AssociationDecision =
  | { kind: 'accept'; uri: string; clientType: string; isController: boolean }
  | { kind: 'refuse'; reason: AssociationRefusal; description: string }
  /** Not an associate request: dropped (with an error_message), the connection stays unassociated. */
  | { kind: 'drop'; description: string };

export interface AssociationInput {
  envelope: EnvelopeV1;
  /** The common name of the connection's verified certificate. */
  commonName: string;
  /** The client type the path named (`/pcp/v1.0/<type>`), if any. */
  pathType: string | undefined;
  isControllerCn: GlobMatcher;
}

export function decideAssociation({ envelope, commonName, pathType, isControllerCn }: AssociationInput): AssociationDecision {
  if (envelope.message_type !== BrokerMessageType.associateRequest) {
    return { kind: 'drop', description: `the session is not associated yet: the first message must be an ${BrokerMessageType.associateRequest}, not ${envelope.message_type}; the message was dropped` };
  }
  if (envelope.targets.length !== 1 || envelope.targets[0] !== BROKER_URI) {
    return { kind: 'refuse', reason: AssociationRefusal.notToBroker, description: `an associate_request must have exactly the target ${BROKER_URI}` };
  }
  let sender;
  try {
    sender = parseUri(envelope.sender);
  } catch {
    return { kind: 'refuse', reason: AssociationRefusal.senderMismatch, description: `sender '${envelope.sender}' is not a pcp://<common name>/<client type> URI` };
  }
  if (sender.commonName !== commonName) {
    return {
      kind: 'refuse',
      reason: AssociationRefusal.senderMismatch,
      description: `sender '${envelope.sender}' does not match the certificate's common name '${commonName}'`,
    };
  }
  const type = sender.clientType;
  if (!isValidClientType(type)) return { kind: 'refuse', reason: AssociationRefusal.badClientType, description: `'${type}' is not a valid client type` };
  if (type === SERVER_CLIENT_TYPE) return { kind: 'refuse', reason: AssociationRefusal.reservedType, description: `client type '${SERVER_CLIENT_TYPE}' is reserved for brokers` };
  if (pathType !== undefined && pathType !== type) {
    return { kind: 'refuse', reason: AssociationRefusal.pathTypeMismatch, description: `the sender's client type '${type}' is not the one this connection's path names ('${pathType}')` };
  }
  const isController = type === CONTROLLER_TYPE;
  if (isController && !isControllerCn(commonName)) {
    return { kind: 'refuse', reason: AssociationRefusal.notAController, description: `'${commonName}' is not allowed to connect as a controller (see controller-cns)` };
  }
  return { kind: 'accept', uri: envelope.sender, clientType: type, isController };
}
