// pino JSON logs. Services bind `component` (and later `node`, `job`) through child loggers.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(component: string, level: LevelWithSilent = 'info'): Logger {
  return pino({ level, base: { component, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
