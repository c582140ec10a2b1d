// The error family of PCP v2: `error_message` (data: a description) and `unauthorized` (no data).
import { errorMessageDataSchema } from '../schemas/pcp.ts';
import { BrokerMessageType } from './message-types.ts';
import { newMessageId, type EnvelopeV2 } from './pcp-v2.ts';
import { BROKER_URI } from './uri.ts';

export { errorMessageDataSchema };

/** An `error_message`; `sender` is the broker's URI unless a client sends it (then the broker fills it in). */
export function errorMessage(target: string, description: string, inReplyTo?: string, sender: string | null = BROKER_URI): EnvelopeV2 {
  const env: EnvelopeV2 = {
    id: newMessageId(),
    message_type: BrokerMessageType.errorMessage,
    target,
    data: description,
  };
  if (sender !== null) env.sender = sender;
  if (inReplyTo !== undefined) env.in_reply_to = inReplyTo;
  return env;
}

export function unauthorized(target: string, inReplyTo: string): EnvelopeV2 {
  return {
    id: newMessageId(),
    message_type: BrokerMessageType.unauthorized,
    target,
    sender: BROKER_URI,
    in_reply_to: inReplyTo,
  };
}
