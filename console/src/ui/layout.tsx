// The frame around every signed-in view: navigation, who is signed in, the offline banner.
import type { ComponentChildren } from 'preact';
import { me, offline, signOut } from '../api.ts';
import { loc } from '../router.ts';
import { Link } from './common.tsx';

export function OfflineBanner() {
  return offline.value ? (
    <div class="banner" role="alert" data-testid="offline-banner">
      Cannot reach the orchestrator; retrying…
    </div>
  ) : null;
}

export function Layout(p: { children: ComponentChildren }) {
  const who = me.value;
  const path = loc.value.path;
  const at = (prefix: string) => path === prefix || path.startsWith(`${prefix}/`);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Baton</span>
        <nav aria-label="Main">
          {who?.can.view_inventory && <Link to="/fleet" testid="nav-fleet" current={at('/fleet')}>Fleet</Link>}
          {who?.can.view_jobs && <Link to="/jobs" testid="nav-jobs" current={at('/jobs')}>Jobs</Link>}
          {who?.can.run_jobs && <Link to="/run" testid="nav-run" current={at('/run')}>Run</Link>}
          {who?.can.view_jobs && <Link to="/deployments" testid="nav-deployments" current={at('/deployments')}>Deployments</Link>}
        </nav>
        <span class="who">
          Signed in as <strong data-testid="whoami">{who?.login ?? ''}</strong>
        </span>
        <button type="button" data-testid="nav-signout" onClick={signOut}>
          Sign out
        </button>
      </header>
      <OfflineBanner />
      <main id="main" tabIndex={-1}>
        {p.children}
      </main>
    </>
  );
}
