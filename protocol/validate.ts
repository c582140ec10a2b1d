// One ajv instance for the wire schemas; every validator is compiled once and reused.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

const ajv = new Ajv({ allErrors: false, strict: true });

export function compile<T>(schema: object): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

/** A short human sentence naming what was wrong, e.g. `envelope must have required property 'id'`. */
export function describeErrors(errors: ErrorObject[] | null | undefined, what: string): string {
  if (!errors || errors.length === 0) return `${what} is invalid`;
  return errors
    .map((e) => {
      const where = e.instancePath ? `${what}${e.instancePath.replaceAll('/', '.')}` : what;
      if (e.keyword === 'additionalProperties') {
        return `${where} has an unknown key '${(e.params as { additionalProperty: string }).additionalProperty}'`;
      }
      if (e.keyword === 'pattern') return `${where} must match ${(e.params as { pattern: string }).pattern}`;
      return `${where} ${e.message ?? 'is invalid'}`;
    })
    .join('; ');
}
