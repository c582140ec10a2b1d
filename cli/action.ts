// Runs a client command's body and exits with the code it returns (0 when it returns nothing).
// Errors go up to cli/main.ts, which prints them and picks the exit code.
import type { ExitCode } from './errors.ts';

export function action<A extends unknown[]>(fn: (...args: A) => Promise<ExitCode | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const code = await fn(...args);
    process.exit(code ?? 0);
  };
}
