// The console's entry: mounts the app, routes paths to views, keeps signed-out users on sign-in.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, getToken, me, messageOf, offline, reconnects } from './api.ts';
import { Deployment } from './pages/deployment.tsx';
import { Deployments } from './pages/deployments.tsx';
import { Fleet } from './pages/fleet.tsx';
import { Job } from './pages/job.tsx';
import { Jobs } from './pages/jobs.tsx';
import { RunPuppet } from './pages/run-puppet.tsx';
import { RunTask } from './pages/run-task.tsx';
import { SignIn } from './pages/signin.tsx';
import { loc, navigate, routeOf, type Route } from './router.ts';
import type { Me } from './types.ts';
import { NotPermitted } from './ui/common.tsx';
import { Layout } from './ui/layout.tsx';
import './app.css';

function View(p: { route: Route }) {
  const can = me.value!.can;
  const r = p.route;
  switch (r.view) {
    case 'fleet': return can.view_inventory ? <Fleet /> : <NotPermitted why="This token may not view the inventory (inventory:view), so the fleet cannot be shown." />;
    case 'jobs': return can.view_jobs ? <Jobs /> : <NotPermitted why="This token may not view jobs (jobs:view)." />;
    case 'job': return can.view_jobs ? <Job key={r.id} id={r.id} /> : <NotPermitted why="This token may not view jobs (jobs:view)." />;
    case 'run': return can.run_jobs ? <RunTask /> : <NotPermitted why="This token may not run jobs (jobs:run), so there is no run form." />;
    case 'run-puppet': return can.run_jobs ? <RunPuppet /> : <NotPermitted why="This token may not run jobs (jobs:run), so there is no run form." />;
    case 'deployments': return can.view_jobs ? <Deployments /> : <NotPermitted why="This token may not view jobs and deployments (jobs:view)." />;
    case 'deployment': return can.view_jobs ? <Deployment key={r.id} id={r.id} /> : <NotPermitted why="This token may not view jobs and deployments (jobs:view)." />;
    default: return (
      <section>
        <h1>Not found</h1>
        <p>There is no console page at this address.</p>
      </section>
    );
  }
}

function App() {
  const route = routeOf(loc.value.path);
  const token = getToken();
  const [loadError, setLoadError] = useState<string | null>(null);
  const back = reconnects.value;

  useEffect(() => {
    if (route.view === 'home') navigate(token ? '/jobs' : '/signin', { replace: true });
    else if (!token && route.view !== 'signin') navigate('/signin', { replace: true });
  }, [route.view, token]);

  useEffect(() => {
    if (!token || me.value || route.view === 'signin') return;
    api<Me>('/console/api/me').then(
      (m) => {
        me.value = m;
        setLoadError(null);
      },
      (err) => setLoadError(messageOf(err)),
    );
  }, [token, route.view, back]);

  if (route.view === 'signin') return <SignIn />;
  if (!token || route.view === 'home') return null;
  if (!me.value) {
    return (
      <Layout>
        <p role="status">{loadError && !offline.value ? `Error: ${loadError}` : 'Loading…'}</p>
      </Layout>
    );
  }
  return (
    <Layout>
      <View route={route} />
    </Layout>
  );
}

render(<App />, document.getElementById('app')!);
