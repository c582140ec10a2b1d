// Starting a broker from configuration sources (file, BATON_* environment, flags).
import { loadConfig, type ConfigSources } from '../lib/config.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { brokerConfigSchema } from '../schemas/broker-config.ts';
import { BROKER_DEFAULTS, type BrokerConfig } from './defaults.ts';
import { Broker, type ResolvedBrokerConfig } from './server.ts';

export { Broker } from './server.ts';

export function resolveBrokerConfig(sources: ConfigSources): ResolvedBrokerConfig {
  return loadConfig<BrokerConfig>(brokerConfigSchema, BROKER_DEFAULTS, sources) as ResolvedBrokerConfig;
}

export async function startBroker(config: ResolvedBrokerConfig, log: Logger = createLogger('broker', config['log-level'])): Promise<Broker> {
  const broker = new Broker(config, log);
  await broker.listen();
  return broker;
}
