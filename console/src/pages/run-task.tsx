// Run a task: the task list from the catalogue, a form generated from the task's parameter
// metadata, a target, noop (when the task supports it), concurrency and timeout. Values the form
// cannot read are sent as typed, so the API refuses them with its own validation message.
import { useState } from 'preact/hooks';
import { api, isAbort, me, messageOf } from '../api.ts';
import { fieldShape, type FieldShape } from '../puppet-type.ts';
import { loc, navigate, qs } from '../router.ts';
import type { TaskJson, TaskParameter } from '../types.ts';
import { ErrorText, Link, NotPermitted, useLoad } from '../ui/common.tsx';
import { emptyTarget, numberOrText, RunLimits, scopeOf, TargetPicker, useStartJob, type Target } from '../ui/target.tsx';

const taskPath = (name: string) => {
  const [mod, task] = name.split('::');
  return `/orchestrator/v1/tasks/${encodeURIComponent(mod ?? name)}/${encodeURIComponent(task ?? 'init')}`;
};

interface Param {
  name: string;
  meta: TaskParameter;
  shape: FieldShape;
  required: boolean;
}

function initial(p: Param): string | boolean {
  const d = p.meta.default;
  if (p.shape.kind === 'boolean') return d === true;
  if (d === undefined || d === null) return '';
  if (p.shape.kind === 'json') return JSON.stringify(d, null, 2);
  return String(d);
}

/** A field's value for the API, or undefined to leave the parameter out. */
function valueOf(p: Param, v: string | boolean): unknown {
  if (p.shape.kind === 'boolean') {
    if (p.meta.default !== undefined) return v === p.meta.default ? undefined : v;
    return v === true || p.required ? v : undefined;
  }
  const s = String(v);
  if (s.trim() === '') return undefined;
  if (p.shape.kind === 'integer' || p.shape.kind === 'float') return numberOrText(s);
  if (p.shape.kind === 'json') {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      return s;
    }
  }
  return s;
}

function ParamField(p: { param: Param; value: string | boolean; onChange(v: string | boolean): void }) {
  const { name, meta, shape, required } = p.param;
  const id = `param-${name}`;
  const common = { id, 'data-testid': id, 'aria-required': required ? ('true' as const) : undefined, 'aria-describedby': `${id}-about` };
  const text = (e: Event) => p.onChange((e.target as HTMLInputElement).value);
  const placeholder = meta.default !== undefined && shape.kind !== 'json' ? String(meta.default) : undefined;
  let input;
  switch (shape.kind) {
    case 'boolean':
      input = <input {...common} type="checkbox" checked={p.value === true} onChange={(e) => p.onChange((e.target as HTMLInputElement).checked)} />;
      break;
    case 'integer':
    case 'float':
      input = meta.sensitive
        ? <input {...common} type="password" autocomplete="off" value={String(p.value)} onInput={text} />
        : <input {...common} type="number" step={shape.kind === 'integer' ? '1' : 'any'} value={String(p.value)} placeholder={placeholder} onInput={text} />;
      break;
    case 'enum':
      input = (
        <select {...common} value={String(p.value)} onChange={text}>
          {(!required || p.value === '') && <option value="">{required ? '(choose)' : '(not given)'}</option>}
          {shape.values.map((v) => <option key={v} value={v}>{v}</option>)}
        </select>
      );
      break;
    case 'json':
      input = <textarea {...common} rows={4} spellcheck={false} value={String(p.value)} placeholder="JSON" onInput={text} />;
      break;
    default:
      input = meta.sensitive
        ? <input {...common} type="password" autocomplete="off" value={String(p.value)} onInput={text} />
        : <input {...common} type="text" value={String(p.value)} placeholder={placeholder} onInput={text} />;
  }
  return (
    <div class={`field param${shape.kind === 'boolean' ? ' check' : ''}`}>
      <label for={id}>
        {name}
        {required && <span class="req" aria-hidden="true"> *</span>}
      </label>
      {input}
      <p class="hint" id={`${id}-about`}>
        <code class="ptype">{meta.type ?? 'Any'}</code>
        {meta.sensitive ? ' (sensitive)' : ''}
        {required ? ' required' : ' optional'}
        {shape.kind === 'json' ? ', as JSON' : ''}
        {meta.default !== undefined && !meta.sensitive ? `, default ${JSON.stringify(meta.default)}` : ''}
        {meta.description ? `. ${meta.description}` : ''}
      </p>
    </div>
  );
}

function TaskForm(p: { task: TaskJson }) {
  const params: Param[] = Object.entries(p.task.metadata.parameters ?? {}).map(([name, meta]) => {
    const shape = fieldShape(meta.type);
    return { name, meta, shape, required: !shape.optional && meta.default === undefined };
  });
  const [values, setValues] = useState<Record<string, string | boolean>>(() => Object.fromEntries(params.map((x) => [x.name, initial(x)])));
  const [target, setTarget] = useState<Target>(emptyTarget());
  const [limits, setLimits] = useState({ concurrency: '', timeout: '' });
  const [noop, setNoop] = useState(false);
  const { busy, error, start } = useStartJob();

  const submit = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = { task: p.task.name, scope: scopeOf(target), params: {} };
    for (const x of params) {
      const v = valueOf(x, values[x.name] ?? '');
      if (v !== undefined) (body.params as Record<string, unknown>)[x.name] = v;
    }
    if (noop) body.noop = true;
    void start('/orchestrator/v1/command/task', body, limits);
  };

  return (
    <form onSubmit={submit} noValidate>
      {p.task.metadata.description && <p class="about">{p.task.metadata.description}</p>}
      <fieldset>
        <legend>Parameters</legend>
        {params.length === 0 ? <p>This task takes no parameters.</p> : params.map((x) => <ParamField key={x.name} param={x} value={values[x.name] ?? ''} onChange={(v) => setValues({ ...values, [x.name]: v })} />)}
        <p class="hint">* required</p>
      </fieldset>
      <TargetPicker value={target} onChange={setTarget} />
      <RunLimits concurrency={limits.concurrency} timeout={limits.timeout} onChange={setLimits} />
      {p.task.metadata.supports_noop === true && (
        <p class="field check">
          <input id="run-noop" data-testid="run-noop" type="checkbox" checked={noop} onChange={(e) => setNoop((e.target as HTMLInputElement).checked)} />
          <label for="run-noop">No-operation mode (noop): report what would change</label>
        </p>
      )}
      <ErrorText testid="run-error" error={error} />
      <button type="submit" data-testid="run-submit" disabled={busy}>
        {busy ? 'Starting…' : `Run ${p.task.name}`}
      </button>
    </form>
  );
}

export function RunTask() {
  const name = loc.value.query.get('task') ?? '';
  const [tasks, setTasks] = useState<string[] | null>(null);
  const [task, setTask] = useState<TaskJson | null>(null);
  const [error, setError] = useState<string | null>(null);
  const canList = me.value!.can.view_tasks;

  useLoad(async (signal) => {
    if (!canList) return;
    try {
      const r = await api<{ items: { name: string }[] }>('/orchestrator/v1/tasks', { signal });
      setTasks(r.items.map((t) => t.name).sort());
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, []);

  useLoad(async (signal) => {
    setTask(null);
    if (!name || !canList) return;
    try {
      setTask(await api<TaskJson>(taskPath(name), { signal }));
      setError(null);
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, [name]);

  if (!canList) return <NotPermitted why="This token may not view tasks (tasks:view), so the task list and forms cannot be shown." />;
  return (
    <section>
      <h1>Run a task</h1>
      <p>
        Or <Link to="/run/puppet">run Puppet</Link> on nodes.
      </p>
      <p class="field">
        <label for="run-task">Task</label>
        <select id="run-task" data-testid="run-task" value={name} onChange={(e) => navigate(`/run${qs({ task: (e.target as HTMLSelectElement).value })}`, { replace: true })}>
          <option value="">{tasks ? '(choose a task)' : 'Loading…'}</option>
          {(tasks ?? []).map((t) => <option key={t} value={t}>{t}</option>)}
          {name && tasks && !tasks.includes(name) && <option value={name}>{name}</option>}
        </select>
      </p>
      {!task && <ErrorText testid="run-error" error={error} />}
      {task && <TaskForm key={task.name} task={task} />}
    </section>
  );
}
