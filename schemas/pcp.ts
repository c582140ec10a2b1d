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

/** `error_message` carries a plain description string. */
export const errorMessageDataSchema = {
  $id: 'baton:pcp/v2/error_message.data',
  type: 'string',
} as const;
