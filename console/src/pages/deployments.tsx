// Deployments (the Nomad face): each with its job, version, status and task groups; live through
// the blocking query of GET /v1/deployments.
import { useState } from 'preact/hooks';
import type { DeploymentJson } from '../types.ts';
import { ErrorText, Link, TableHead, useLoad } from '../ui/common.tsx';
import { watchBlocking } from '../ui/blocking.ts';

export function groupLine(d: DeploymentJson): string {
  return Object.entries(d.TaskGroups)
    .map(([name, g]) => `${name}: ${g.HealthyAllocs}/${g.DesiredTotal} healthy${g.UnhealthyAllocs ? `, ${g.UnhealthyAllocs} unhealthy` : ''}${g.DesiredCanaries ? `, ${(g.PlacedCanaries ?? []).length}/${g.DesiredCanaries} canaries${g.Promoted ? ' (promoted)' : ''}` : ''}`)
    .join('; ');
}

export function Deployments() {
  const [items, setItems] = useState<DeploymentJson[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useLoad((signal) => watchBlocking<DeploymentJson[]>('/v1/deployments', signal, setItems, setError), []);
  return (
    <section>
      <h1>Deployments</h1>
      <ErrorText testid="deployment-error" error={error} />
      <table>
        <TableHead caption="Deployments, newest first" columns={['Deployment', 'Job', 'Version', 'Status', 'Task groups']} />
        <tbody>
          {(items ?? []).map((d) => (
            <tr key={d.ID} data-testid="deployment-row" data-deployment={d.ID} data-status={d.Status}>
              <td>
                <Link to={`/deployments/${encodeURIComponent(d.ID)}`}>{d.ID.slice(0, 8)}</Link>
              </td>
              <td>{d.JobID}</td>
              <td>{d.JobVersion}</td>
              <td>
                <span class={`state d-${d.Status}`}>{d.Status}</span>
                {d.StatusDescription && <span class="what"> {d.StatusDescription}</span>}
              </td>
              <td>{groupLine(d)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {items && items.length === 0 && <p>No deployments yet.</p>}
      {!items && !error && <p role="status">Loading…</p>}
    </section>
  );
}
