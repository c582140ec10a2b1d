// Pieces shared by the configuration schemas of Baton's programs.

export const nonEmptyString = { type: 'string', minLength: 1 } as const;

/** A program's TLS identity and the CA it trusts (pxp-agent's and pcp-broker's key names). */
export const tlsConfigProperties = {
  'ssl-ca-cert': nonEmptyString,
  'ssl-cert': nonEmptyString,
  'ssl-key': nonEmptyString,
  'ssl-crl-path': nonEmptyString,
} as const;

export const logLevelSchema = { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] } as const;
