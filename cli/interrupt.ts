// Ctrl-C while a job is followed: on a terminal, ask whether to stop the job (y) or detach (anything
// else); without a terminal, detach. SIGTERM detaches too. The follower races each of its requests
// against a detach (`race`), so that a request that does not answer never holds it: a detach ends
// the follow at once. A Ctrl-C (or SIGTERM) while detaching exits at once (code 4).
import { createInterface } from 'node:readline';
import { CliError, CliErrorCode, ExitCode } from './errors.ts';
import type { Reporter } from './progress.ts';

export type InterruptState = 'none' | 'prompting' | 'stop' | 'detach';

/** What a raced request rejects with once the user has detached. */
export function detachedError(): CliError {
  return new CliError(CliErrorCode.detached, 'detached');
}

export class Interrupt {
  state: InterruptState = 'none';
  private wake: (() => void) | null = null;
  private listeners: (() => void)[] = [];
  private readonly detaching = new AbortController();
  private noticed = false;
  private readonly onSigint = () => void this.interrupted();
  private readonly onSigterm = () => (this.state === 'detach' ? this.exitNow() : this.set('detach'));

  constructor(
    private readonly question: string,
    /** Printed (stderr) once when the user detaches: how to follow the job again. */
    private readonly notice: string,
    private readonly reporter: Reporter,
    private readonly interactive = process.stdin.isTTY === true && process.stdout.isTTY === true,
  ) {
    process.on('SIGINT', this.onSigint);
    process.on('SIGTERM', this.onSigterm);
  }

  /** Aborted when the user detaches: give it to requests so that they are cancelled then. */
  get signal(): AbortSignal {
    return this.detaching.signal;
  }

  /** `work`'s outcome, or a `cli/detached` error as soon as the user detaches. */
  race<T>(work: Promise<T>): Promise<T> {
    if (this.state === 'detach') {
      work.catch(() => undefined);
      return Promise.reject(detachedError());
    }
    return new Promise<T>((resolve, reject) => {
      const onDetach = () => reject(detachedError());
      this.signal.addEventListener('abort', onDetach, { once: true });
      void work.then(resolve, reject).finally(() => this.signal.removeEventListener('abort', onDetach));
    });
  }

  /** Waits `ms` (the polling interval), or less when the user interrupts. */
  pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  /** Resolves at the next decision (stop or detach). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.listeners.push(resolve));
  }

  /** Stops the display and says how to follow the job again (once). */
  printNotice(): void {
    this.reporter.stop();
    if (this.noticed) return;
    this.noticed = true;
    process.stderr.write(this.notice);
  }

  dispose(): void {
    process.off('SIGINT', this.onSigint);
    process.off('SIGTERM', this.onSigterm);
  }

  private set(state: InterruptState): void {
    this.state = state;
    if (state === 'detach') this.detaching.abort();
    this.wake?.();
    const listeners = this.listeners;
    this.listeners = [];
    for (const l of listeners) l();
  }

  /** Something holds the follower after a detach (it should not): the user asked twice. */
  private exitNow(): never {
    this.printNotice();
    process.exit(ExitCode.detached);
  }

  private async interrupted(): Promise<void> {
    if (this.state === 'detach') return this.exitNow(); // a second Ctrl-C
    if (this.state === 'prompting' || this.state === 'stop') return this.set('detach');
    if (!this.interactive) return this.set('detach');
    this.state = 'prompting';
    this.reporter.stop();
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await new Promise<string>((resolve) => {
      rl.on('SIGINT', () => resolve('')); // Ctrl-C at the prompt: detach
      rl.on('close', () => resolve(''));
      rl.question(this.question, resolve);
    });
    rl.close();
    if (this.state !== 'prompting') return;
    if (/^y(es)?$/i.test(answer.trim())) {
      this.reporter.resume();
      this.set('stop');
    } else {
      this.set('detach');
    }
  }
}
