// Starting an agent from configuration sources (file, BATON_* environment, flags).
import { loadConfig, type ConfigSources } from '../lib/config.ts';
import { durationMs } from '../lib/duration.ts';
import { agentConfigSchema } from '../schemas/agent-config.ts';
import { Agent } from './agent.ts';
import { AGENT_DEFAULTS, type AgentConfig, type ResolvedAgentConfig } from './defaults.ts';

export { Agent } from './agent.ts';

export function resolveAgentConfig(sources: ConfigSources): ResolvedAgentConfig {
  const config = loadConfig<AgentConfig>(agentConfigSchema, AGENT_DEFAULTS, sources) as ResolvedAgentConfig;
  durationMs(config['spool-dir-purge-ttl'], 'spool-dir-purge-ttl');
  durationMs(config['task-cache-dir-purge-ttl'], 'task-cache-dir-purge-ttl');
  return config;
}
