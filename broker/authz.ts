// Authorization of routed messages. Without rules the built-in policy applies: controllers may
// send anything to anyone (the broker included); every other client may send only PXP replies and
// error messages, and only to controllers. With `authorization.rules` the rules replace that
// policy: ordered `{sender, target, message_type, allow}` globs, first match wins, default deny.
import { compileGlob, type GlobMatcher } from '../lib/glob.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import { PXP_REPLY_TYPES } from '../protocol/pxp.ts';
import { BROKER_URI, clientTypeOf } from '../protocol/uri.ts';

export const CONTROLLER_TYPE = 'controller';

export interface AuthorizationRule {
  sender?: string;
  target?: string;
  message_type?: string;
  allow: boolean;
}

/** Who is asking: the session's URI and whether it is a controller session. */
export interface Principal {
  readonly uri: string;
  readonly isController: boolean;
}

/** `target` is `pcp:///server` for messages to the broker itself. */
export type Authorizer = (sender: Principal, target: string, messageType: string) => boolean;

const AGENT_SENDABLE_TYPES: ReadonlySet<string> = new Set([...PXP_REPLY_TYPES, BrokerMessageType.errorMessage]);

export const defaultPolicy: Authorizer = (sender, target, messageType) => {
  if (sender.isController) return true;
  return target !== BROKER_URI && AGENT_SENDABLE_TYPES.has(messageType) && clientTypeOf(target) === CONTROLLER_TYPE;
};

interface CompiledRule {
  sender: GlobMatcher;
  target: GlobMatcher;
  messageType: GlobMatcher;
  allow: boolean;
}

export function createAuthorizer(rules: readonly AuthorizationRule[] | undefined): Authorizer {
  if (rules === undefined) return defaultPolicy;
  const compiled: CompiledRule[] = rules.map((r) => ({
    sender: compileGlob(r.sender ?? '*'),
    target: compileGlob(r.target ?? '*'),
    messageType: compileGlob(r.message_type ?? '*'),
    allow: r.allow,
  }));
  return (sender, target, messageType) => {
    for (const rule of compiled) {
      if (rule.sender(sender.uri) && rule.target(target) && rule.messageType(messageType)) return rule.allow;
    }
    return false;
  };
}
