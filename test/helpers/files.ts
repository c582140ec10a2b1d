// Waiting for files that a process under test writes: watched (fs.watch on the folder), never polled.
import { existsSync, watch } from 'node:fs';
import { dirname } from 'node:path';

/** Resolves once `path` exists; rejects after `timeoutMs`, saying `why` it should have appeared. */
export function appears(path: string, timeoutMs: number, why = 'it was never written'): Promise<void> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(path));
    const done = (err?: Error) => {
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`${path} did not appear within ${timeoutMs} ms: ${why}`)), timeoutMs);
    watcher.on('change', () => existsSync(path) && done());
    if (existsSync(path)) done();
  });
}
