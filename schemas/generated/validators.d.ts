// Types of the generated validators (see scripts/gen-validators.ts).
import type { ValidateFunction } from 'ajv';

export declare const byId: Record<string, ValidateFunction>;
