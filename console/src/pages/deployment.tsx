// One deployment: its task groups (desired, canaries placed, healthy, unhealthy) and Promote /
// Pause / Resume / Fail (with jobs:run); live through the blocking query of GET /v1/deployment/<id>.
import { useState } from 'preact/hooks';
import { api, me, messageOf } from '../api.ts';
import type { DeploymentJson } from '../types.ts';
import { ErrorText, Link, useLoad } from '../ui/common.tsx';
import { watchBlocking } from '../ui/blocking.ts';

const ACTIVE = ['running', 'paused'];

export function Deployment(p: { id: string }) {
  const [d, setD] = useState<DeploymentJson | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useLoad((signal) => watchBlocking<DeploymentJson>(`/v1/deployment/${encodeURIComponent(p.id)}`, signal, setD, setLoadError), [p.id]);

  const act = async (what: 'promote' | 'pause' | 'resume' | 'fail') => {
    setBusy(true);
    setError(null);
    const path = `/v1/deployment/${what === 'resume' ? 'pause' : what}/${encodeURIComponent(p.id)}`;
    const body = what === 'promote' ? { DeploymentID: p.id, All: true } : what === 'pause' ? { DeploymentID: p.id, Pause: true } : what === 'resume' ? { DeploymentID: p.id, Pause: false } : { DeploymentID: p.id };
    try {
      await api(path, { method: 'POST', body });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const head = (
    <p class="crumbs">
      <Link to="/deployments">Deployments</Link> / {p.id}
    </p>
  );
  if (!d) {
    return (
      <section>
        {head}
        <ErrorText testid="deployment-error" error={loadError} />
        {!loadError && <p role="status">Loading…</p>}
      </section>
    );
  }
  const groups = Object.entries(d.TaskGroups);
  const canPromote = d.Status === 'running' && groups.some(([, g]) => g.DesiredCanaries > 0 && !g.Promoted);
  const run = me.value!.can.run_jobs;
  return (
    <section>
      {head}
      <h1>Deployment of {d.JobID} (version {d.JobVersion})</h1>
      <p>
        Status: <span class={`state d-${d.Status}`} data-testid="deployment-status">{d.Status}</span>
        {d.StatusDescription ? ` — ${d.StatusDescription}` : ''}
      </p>
      {run && (
        <div class="buttons">
          <button type="button" data-testid="deployment-promote" disabled={busy || !canPromote} onClick={() => void act('promote')}>Promote canaries</button>
          <button type="button" data-testid="deployment-pause" disabled={busy || d.Status !== 'running'} onClick={() => void act('pause')}>Pause</button>
          <button type="button" data-testid="deployment-resume" disabled={busy || d.Status !== 'paused'} onClick={() => void act('resume')}>Resume</button>
          <button type="button" data-testid="deployment-fail" disabled={busy || !ACTIVE.includes(d.Status)} onClick={() => void act('fail')}>Fail</button>
        </div>
      )}
      <ErrorText testid="deployment-error" error={error ?? loadError} />
      <h2>Task groups</h2>
      <div class="groups">
        {groups.map(([name, g]) => (
          <article key={name} class="group" data-testid="deployment-group" data-group={name}>
            <h3>{name}</h3>
            <dl class="facts">
              <dt>Desired</dt>
              <dd data-testid="group-desired">{g.DesiredTotal}</dd>
              <dt>Canaries placed</dt>
              <dd data-testid="group-canaries">{`${(g.PlacedCanaries ?? []).length} of ${g.DesiredCanaries}`}{g.DesiredCanaries > 0 ? (g.Promoted ? ' (promoted)' : ' (not promoted)') : ''}</dd>
              <dt>Placed</dt>
              <dd>{g.PlacedAllocs}</dd>
              <dt>Healthy</dt>
              <dd data-testid="group-healthy">{g.HealthyAllocs}</dd>
              <dt>Unhealthy</dt>
              <dd data-testid="group-unhealthy">{g.UnhealthyAllocs}</dd>
              <dt>Auto-promote</dt>
              <dd>{g.AutoPromote ? 'yes' : 'no'}</dd>
            </dl>
          </article>
        ))}
      </div>
    </section>
  );
}
