// Sign-in with an API token: checked with GET /console/api/me, kept in sessionStorage.
import { useState } from 'preact/hooks';
import { errorOf, me, setToken } from '../api.ts';
import { loc, navigate } from '../router.ts';
import type { Me } from '../types.ts';
import { OfflineBanner } from '../ui/layout.tsx';

export const EXPIRED_MESSAGE = 'Your session ended: the token is no longer valid. Sign in again.';

export function SignIn() {
  const reason = loc.value.query.get('reason');
  const [token, setTok] = useState('');
  const [error, setError] = useState<string | null>(reason === 'expired' ? EXPIRED_MESSAGE : null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return setError('Give an API token.');
    setBusy(true);
    setError(null);
    try {
      const res = await fetch('/console/api/me', { headers: { 'X-Authentication': t, Accept: 'application/json' }, cache: 'no-store' });
      if (!res.ok) {
        setError((await errorOf(res)).message);
        return;
      }
      setToken(t);
      me.value = (await res.json()) as Me;
      navigate('/jobs', { replace: true });
    } catch {
      setError('Cannot reach the orchestrator. Try again.');
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <OfflineBanner />
      <main id="main" class="signin">
        <h1>Baton console</h1>
        <form onSubmit={submit}>
          <p class="field">
            <label for="signin-token">API token</label>
            <input id="signin-token" data-testid="signin-token" type="password" autocomplete="current-password" value={token} onInput={(e) => setTok((e.target as HTMLInputElement).value)} autofocus />
          </p>
          <p class="hint">The console has exactly this token's permissions. It is kept in this browser tab only.</p>
          <p class="error" role="alert" data-testid="signin-error" hidden={!error}>
            {error ?? ''}
          </p>
          <button type="submit" data-testid="signin-submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      </main>
    </>
  );
}
