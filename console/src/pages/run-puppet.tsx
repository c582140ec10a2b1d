// Run Puppet on nodes (POST /orchestrator/v1/command/deploy): environment, target, noop, debug,
// trace, evaltrace, concurrency and timeout.
import { useState } from 'preact/hooks';
import { ErrorText, Link } from '../ui/common.tsx';
import { emptyTarget, RunLimits, scopeOf, TargetPicker, useStartJob, type Target } from '../ui/target.tsx';

const FLAGS = [
  ['puppet-noop', 'noop', 'No-operation mode (--noop): report what would change'],
  ['puppet-debug', 'debug', 'Debug output (--debug)'],
  ['puppet-trace', 'trace', 'Stack traces on errors (--trace)'],
  ['puppet-evaltrace', 'evaltrace', 'Time each resource (--evaltrace)'],
] as const;

type Flag = (typeof FLAGS)[number][1];

export function RunPuppet() {
  const [environment, setEnvironment] = useState('production');
  const [target, setTarget] = useState<Target>(emptyTarget());
  const [limits, setLimits] = useState({ concurrency: '', timeout: '' });
  const [flags, setFlags] = useState<Record<Flag, boolean>>({ noop: false, debug: false, trace: false, evaltrace: false });
  const { busy, error, start } = useStartJob();

  const submit = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = { environment: environment.trim(), scope: scopeOf(target) };
    for (const [, f] of FLAGS) if (flags[f]) body[f] = true;
    void start('/orchestrator/v1/command/deploy', body, limits);
  };

  return (
    <section>
      <h1>Run Puppet</h1>
      <p>
        Or <Link to="/run">run a task</Link>.
      </p>
      <form onSubmit={submit} noValidate>
        <p class="field">
          <label for="puppet-environment">Environment *</label>
          <input id="puppet-environment" data-testid="puppet-environment" aria-required="true" value={environment} onInput={(e) => setEnvironment((e.target as HTMLInputElement).value)} />
        </p>
        <TargetPicker value={target} onChange={setTarget} wholeEnvironment />
        <RunLimits concurrency={limits.concurrency} timeout={limits.timeout} onChange={setLimits} />
        <fieldset>
          <legend>Puppet options</legend>
          {FLAGS.map(([id, f, label]) => (
            <p class="field check" key={id}>
              <input id={id} data-testid={id} type="checkbox" checked={flags[f]} onChange={(e) => setFlags({ ...flags, [f]: (e.target as HTMLInputElement).checked })} />
              <label for={id}>{label}</label>
            </p>
          ))}
        </fieldset>
        <ErrorText testid="run-error" error={error} />
        <button type="submit" data-testid="puppet-submit" disabled={busy}>
          {busy ? 'Starting…' : 'Run Puppet'}
        </button>
      </form>
    </section>
  );
}
