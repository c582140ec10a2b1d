// Turns a config schema's scalar keys into command-line flags (`--max-message-size <value>`), so
// every config key can also be given as a flag, with the same name.
import type { Command } from 'commander';

interface SchemaLike {
  properties: Record<string, { type?: string; enum?: readonly unknown[] }>;
}

export function addConfigFlags(cmd: Command, schema: SchemaLike, descriptions: Record<string, string> = {}): Command {
  for (const [key, prop] of Object.entries(schema.properties)) {
    if (prop.type === 'object') continue;
    const what = prop.type === 'array' ? 'list' : prop.type === 'integer' ? 'n' : 'value';
    cmd.option(`--${key} <${what}>`, descriptions[key] ?? `config key ${key}`);
  }
  return cmd.option('--config <file>', 'JSON config file (flags and BATON_* variables override it)');
}

/** Commander camel-cases option names; maps them back to config keys. */
export function configFlags(schema: SchemaLike, opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const camel = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (opts[camel] !== undefined) out[key] = opts[camel];
  }
  return out;
}
