// Ctrl-C while a job is followed: on a terminal, ask whether to stop the job (y) or detach (anything
// else); without a terminal, detach. The follower polls `state` between requests.
import { createInterface } from 'node:readline';
import type { Reporter } from './progress.ts';

export type InterruptState = 'none' | 'prompting' | 'stop' | 'detach';

export class Interrupt {
  state: InterruptState = 'none';
  private wake: (() => void) | null = null;
  private listeners: (() => void)[] = [];
  private readonly onSigint = () => void this.interrupted();

  constructor(
    private readonly question: string,
    private readonly reporter: Reporter,
    private readonly interactive = process.stdin.isTTY === true && process.stdout.isTTY === true,
  ) {
    process.on('SIGINT', this.onSigint);
    process.on('SIGTERM', this.onSigterm);
  }

  private readonly onSigterm = () => this.set('detach');

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

  dispose(): void {
    process.off('SIGINT', this.onSigint);
    process.off('SIGTERM', this.onSigterm);
  }

  private set(state: InterruptState): void {
    this.state = state;
    this.wake?.();
    const listeners = this.listeners;
    this.listeners = [];
    for (const l of listeners) l();
  }

  private async interrupted(): Promise<void> {
    if (this.state === 'prompting' || this.state === 'stop') return this.set('detach'); // a second Ctrl-C
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
