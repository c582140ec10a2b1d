// Validators of the schemas in schemas/, compiled ahead of time (scripts/gen-validators.ts), so
// that no process compiles schemas or loads ajv's compiler at run time.
import type { ErrorObject, ValidateFunction } from 'ajv';
import { byId } from '../schemas/generated/validators.js';

/** The precompiled validator of a schema (by its `$id`). */
export function compile<T>(schema: { $id?: string }): ValidateFunction<T> {
  const validate = schema.$id === undefined ? undefined : byId[schema.$id];
  if (!validate) throw new Error(`no precompiled validator for schema ${schema.$id ?? '(without $id)'}; run npm run gen:validators`);
  return validate as ValidateFunction<T>;
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
