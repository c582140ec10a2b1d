// What a followed job looks like: on a terminal a live bar (nodes done/total, failures, elapsed)
// with a line above it for each node that ends; otherwise one plain line per node. With --json,
// nothing until the end.
import cliProgress from 'cli-progress';
import { duration, green, isTty, out, red, yellow } from './format.ts';

export type NodeOutcomeKind = 'ok' | 'failed' | 'skipped';

export interface Summary {
  jobId: string;
  verb: string; // "completed", "failed", "stopped"
  succeeded: number;
  total: number;
  durationMs: number;
}

export class Reporter {
  private bar: cliProgress.MultiBar | null = null;
  private single: cliProgress.SingleBar | null = null;
  private done = 0;
  private failed = 0;
  private readonly startMs = Date.now();
  private readonly seen = new Set<string>();

  constructor(
    private readonly total: number,
    readonly mode: 'tty' | 'plain' | 'json' = isTty() ? 'tty' : 'plain',
  ) {}

  start(headline: string): void {
    if (this.mode === 'json') return;
    out(headline);
    if (this.mode !== 'tty') return;
    this.makeBar();
  }

  /** A node ended: one line, and the bar moves. A node reported twice counts once. */
  node(name: string, state: string, kind: NodeOutcomeKind, summary: string): void {
    if (this.seen.has(name)) return;
    this.seen.add(name);
    this.done++;
    if (kind !== 'ok') this.failed++;
    if (this.mode === 'json') return;
    const mark = kind === 'ok' ? green('✔') : kind === 'failed' ? red('✖') : yellow('–');
    const coloured = kind === 'ok' ? green(state) : kind === 'failed' ? red(state) : yellow(state);
    const line = this.mode === 'tty' ? `  ${mark} ${name}  ${coloured}  ${summary}` : `${name}  ${state}${summary ? `  ${summary}` : ''}`;
    this.log(line);
    this.single?.update(this.done, this.payload());
  }

  log(line: string): void {
    if (this.mode === 'json') return;
    if (this.bar) this.bar.log(`${line}\n`);
    else out(line);
  }

  /**
   * Stops drawing (before a prompt, at the end, on an error or a detach) and shows the cursor
   * again; lines are written directly afterwards. Idempotent.
   */
  stop(): void {
    if (!this.bar) return;
    process.off('exit', this.onExit);
    this.single?.update(this.done, this.payload());
    this.bar.stop();
    this.bar = null;
    this.single = null;
  }

  /** Draws again after a prompt. */
  resume(): void {
    if (this.mode !== 'tty' || this.bar) return;
    this.makeBar();
  }

  elapsedMs(): number {
    return Date.now() - this.startMs;
  }

  summary(s: Summary): void {
    this.stop();
    if (this.mode === 'json') return;
    const line = `Job ${s.verb}. ${s.succeeded}/${s.total} nodes succeeded. Duration: ${duration(s.durationMs)}`;
    out(s.verb === 'completed' && s.succeeded === s.total ? line : s.verb === 'stopped' ? yellow(line) : red(line));
  }

  /** A process that exits with the bar drawn (process.exit from anywhere) gets its cursor back. */
  private readonly onExit = () => this.stop();

  private makeBar(): void {
    process.on('exit', this.onExit);
    this.bar = new cliProgress.MultiBar(
      {
        format: ' {bar} {value}/{total} nodes | {failed} failed | {elapsed}',
        stream: process.stdout,
        // The cursor is hidden while the bar is drawn; stop() shows it again. Signals are the
        // followers' (interrupt.ts), so the bar does not handle them itself.
        hideCursor: true,
        gracefulExit: false,
        clearOnComplete: true,
        barsize: 30,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.single = this.bar.create(Math.max(this.total, 1), this.done, this.payload());
  }

  private payload(): Record<string, unknown> {
    return { failed: this.failed, elapsed: duration(this.elapsedMs()) };
  }
}
