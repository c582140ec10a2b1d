// Configuration: defaults < JSON file < BATON_* environment variables < command-line flags.
// The merged object is validated against the program's schema; a bad value names its key.
import { readFileSync, statSync } from 'node:fs';
import type { ErrorObject } from 'ajv';
import { BatonError } from '../protocol/errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsJsonDepth } from '../protocol/json-depth.ts';
import { compile } from '../protocol/validate.ts';

export const ConfigErrorCode = {
  unreadable: 'config/unreadable',
  invalid: 'config/invalid',
} as const;

export class ConfigError extends BatonError {}

/** Largest config file read (bytes); a bigger one is refused before it is read into memory. */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;
/** Deepest nesting of arrays/objects in a config file or a JSON config value, checked before parsing. */
export const MAX_CONFIG_DEPTH = DEFAULT_MAX_MESSAGE_DEPTH;

interface PropertySchema {
  type?: string;
  enum?: readonly unknown[];
}

interface ObjectSchema {
  $id: string;
  properties: Record<string, PropertySchema>;
}

/** `max-message-size` → `BATON_MAX_MESSAGE_SIZE`. */
export function envName(key: string): string {
  return `BATON_${key.toUpperCase().replaceAll('-', '_')}`;
}

export interface ConfigSources {
  /** Path of a JSON file, if any. */
  file?: string | undefined;
  /** Usually process.env. */
  env?: Record<string, string | undefined>;
  /** Values from flags, already keyed by config key; strings are coerced like env values. */
  flags?: Record<string, unknown>;
}

export function loadConfig<T extends object>(schema: ObjectSchema & object, defaults: Partial<T>, sources: ConfigSources): T {
  const fromFile = sources.file === undefined ? {} : readJsonFile(sources.file);
  const fromEnv: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(schema.properties)) {
    const raw = sources.env?.[envName(key)];
    if (raw !== undefined && raw !== '') fromEnv[key] = coerce(key, raw, prop, `environment variable ${envName(key)}`);
  }
  const fromFlags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined) continue;
    const prop = schema.properties[key];
    fromFlags[key] = typeof value === 'string' && prop ? coerce(key, value, prop, `flag --${key}`) : value;
  }
  const merged = { ...defaults, ...fromFile, ...fromEnv, ...fromFlags };
  const validate = compile(schema);
  if (!validate(merged)) throw new ConfigError(ConfigErrorCode.invalid, describe(validate.errors?.[0]));
  return merged as T;
}

/** Reads a file named by a config key; an unreadable file is a configuration error naming the key. */
/** Reads the file a config key names; `prefix` names the key's parent in the error (`puppetdb.`). */
export function readConfiguredFile<K extends string>(config: { [k in K]?: string }, key: K, prefix = ''): Buffer {
  const path = config[key];
  try {
    return readFileSync(path ?? '');
  } catch (cause) {
    throw new ConfigError(ConfigErrorCode.unreadable, `config key '${prefix}${key}': cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
}

function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError(ConfigErrorCode.invalid, `config file ${path} is ${size} bytes; the largest read is ${MAX_CONFIG_FILE_BYTES}`);
    }
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError(ConfigErrorCode.unreadable, `cannot read config file ${path}: ${(cause as Error).message}`, { cause });
  }
  if (exceedsJsonDepth(text, MAX_CONFIG_DEPTH)) {
    throw new ConfigError(ConfigErrorCode.invalid, `config file ${path} nests arrays or objects deeper than ${MAX_CONFIG_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(ConfigErrorCode.invalid, `config file ${path} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(ConfigErrorCode.invalid, `config file ${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

function coerce(key: string, raw: string, prop: PropertySchema, origin: string): unknown {
  const bad = (what: string) =>
    new ConfigError(ConfigErrorCode.invalid, `config key '${key}' (${origin}) must be ${what}, got '${raw}'`);
  switch (prop.type) {
    case 'integer':
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (prop.type === 'integer' && !Number.isInteger(n))) {
        throw bad(prop.type === 'integer' ? 'an integer' : 'a number');
      }
      return n;
    }
    case 'boolean':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw bad('true or false');
    case 'array':
      if (raw.trimStart().startsWith('[')) return parseJson(raw, bad);
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'object':
      return parseJson(raw, bad);
    default:
      return raw;
  }
}

function parseJson(raw: string, bad: (what: string) => ConfigError): unknown {
  if (exceedsJsonDepth(raw, MAX_CONFIG_DEPTH)) throw bad(`JSON nested at most ${MAX_CONFIG_DEPTH} levels deep`);
  try {
    return JSON.parse(raw);
  } catch {
    throw bad('JSON');
  }
}

function describe(e: ErrorObject | undefined): string {
  if (!e) return 'configuration is invalid';
  const path = e.instancePath.slice(1).split('/').filter(Boolean);
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    return `unknown config key '${[...path, extra].join('.')}'`;
  }
  if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    return `config key '${[...path, missing].join('.')}' is required`;
  }
  if (e.keyword === 'enum') {
    return `config key '${path.join('.')}' must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  }
  return `config key '${path.join('.')}' ${e.message ?? 'is invalid'}`;
}
