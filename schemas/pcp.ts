// JSON Schemas of PCP v2 envelopes and of the broker's own message data (pcp-specifications, 2.0).
// Types are derived from these objects with json-schema-to-ts; validators are compiled once in
// protocol/validate.ts.

/** `pcp://<common name>/<client type>`; an empty common name names the broker (`pcp:///server`). */
export const PCP_URI_PATTERN = '^pcp://[^/]*/[^/]+$';

const pcpUri = { type: 'string', pattern: PCP_URI_PATTERN, maxLength: 1024 } as const;

export const envelopeV2Schema = {
  $id: 'baton:pcp/v2/envelope',
  type: 'object',
  required: ['id', 'message_type'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 256 },
    message_type: { type: 'string', minLength: 1, maxLength: 1024 },
    target: pcpUri,
    sender: pcpUri,
    in_reply_to: { type: 'string', minLength: 1, maxLength: 256 },
    data: {},
    /**
     * Baton's extension: the stable code of a broker `error_message` (protocol/broker-errors.ts),
     * beside `in_reply_to`, since v2 error data is a plain string. Sent to controllers only (Puppet's
     * pxp-agent refuses envelope fields it does not know); clients trust it only from the broker.
     */
    code: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

export const inventoryRequestDataSchema = {
  $id: 'baton:pcp/v2/inventory_request.data',
  type: 'object',
  required: ['query'],
  additionalProperties: false,
  properties: {
    query: { type: 'array', items: pcpUri, maxItems: 10_000 },
    subscribe: { type: 'boolean' },
  },
} as const;

export const inventoryResponseDataSchema = {
  $id: 'baton:pcp/v2/inventory_response.data',
  type: 'object',
  required: ['uris'],
  additionalProperties: false,
  properties: { uris: { type: 'array', items: pcpUri } },
} as const;

export const inventoryUpdateDataSchema = {
  $id: 'baton:pcp/v2/inventory_update.data',
  type: 'object',
  required: ['changes'],
  additionalProperties: false,
  properties: {
    changes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['client', 'change'],
        additionalProperties: false,
        properties: { client: pcpUri, change: { enum: [1, -1] } },
      },
    },
  },
} as const;

/** `error_message` carries a plain description string (the broker's code is the envelope's `code`). */
export const errorMessageDataSchema = {
  $id: 'baton:pcp/v2/error_message.data',
  type: 'string',
} as const;

/**
 * The envelope chunk of a PCP v1 message (pcp-specifications, 1.0: message.md). `in-reply-to`
 * is not in the specification but cpp-pcp-client accepts it and pcp-broker sets it on translated
 * inventory responses; Baton sets it on messages it translates from v2 replies.
 */
export const envelopeV1Schema = {
  $id: 'baton:pcp/v1/envelope',
  type: 'object',
  required: ['id', 'message_type', 'expires', 'targets', 'sender'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 256 },
    message_type: { type: 'string', minLength: 1, maxLength: 1024 },
    expires: { type: 'string', minLength: 1, maxLength: 64 },
    targets: { type: 'array', items: pcpUri, maxItems: 10_000 },
    sender: pcpUri,
    destination_report: { type: 'boolean' },
    'in-reply-to': { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

/** Data of a v1 `associate_response`. */
export const associateResponseDataSchema = {
  $id: 'baton:pcp/v1/associate_response.data',
  type: 'object',
  required: ['id', 'success'],
  additionalProperties: false,
  properties: { id: { type: 'string' }, success: { type: 'boolean' }, reason: { type: 'string' } },
} as const;

/**
 * Data of a v1 `error_message`: the id of the message it is about, when known, a description and,
 * from Baton's broker to a controller, its stable code (protocol/broker-errors.ts; not to agents:
 * Puppet's pxp-agent refuses error data with keys it does not know).
 */
export const errorMessageV1DataSchema = {
  $id: 'baton:pcp/v1/error_message.data',
  type: 'object',
  required: ['description'],
  additionalProperties: false,
  properties: { id: { type: 'string' }, description: { type: 'string' }, code: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

/** A v1 debug chunk: the hops a message took through brokers. */
export const debugChunkSchema = {
  $id: 'baton:pcp/v1/debug',
  type: 'object',
  required: ['hops'],
  properties: {
    hops: {
      type: 'array',
      maxItems: 1_000,
      items: {
        type: 'object',
        required: ['server', 'time'],
        properties: { server: { type: 'string' }, stage: { type: 'string' }, time: { type: 'string' } },
      },
    },
  },
} as const;
