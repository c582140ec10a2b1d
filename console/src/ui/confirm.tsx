// The confirmation dialog (a modal <dialog>: focus stays inside, Escape cancels), with optional
// password fields for sensitive parameters a re-run must be given again.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export interface ConfirmProps {
  title: string;
  children: ComponentChildren;
  okLabel: string;
  /** Names of values to ask for (password fields). */
  secrets?: string[];
  busy?: boolean;
  onOk(secrets: Record<string, string>): void;
  onCancel(): void;
}

export function ConfirmDialog(p: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const missing = (p.secrets ?? []).some((s) => !values[s]);
  return (
    <dialog
      ref={ref}
      class="confirm"
      data-testid="confirm-dialog"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        p.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (!missing && !p.busy) p.onOk(values);
        }}
      >
        <h2 id="confirm-title">{p.title}</h2>
        <div>{p.children}</div>
        {(p.secrets ?? []).map((s) => (
          <p key={s} class="field">
            <label for={`confirm-secret-${s}`}>{s} (sensitive, not shown by the API: give it again) *</label>
            <input
              id={`confirm-secret-${s}`}
              type="password"
              data-testid={`confirm-secret-${s}`}
              aria-required="true"
              required
              autocomplete="off"
              value={values[s] ?? ''}
              onInput={(e) => setValues({ ...values, [s]: (e.target as HTMLInputElement).value })}
            />
          </p>
        ))}
        <div class="buttons">
          <button type="submit" data-testid="confirm-ok" disabled={missing || p.busy}>
            {p.okLabel}
          </button>
          <button type="button" data-testid="confirm-cancel" onClick={() => p.onCancel()} autofocus>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
