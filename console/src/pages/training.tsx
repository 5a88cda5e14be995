/**
 * Training: start a job (hyperparameters with the API's defaults filled in and its limits enforced in the
 * form), the list of jobs, and one job live — loss chart, step / total, ETA and tokens/s from the
 * `trainingJobProgress` subscription, with cancel.
 */
import { useMemo, useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { ErrorNote, Loading, Pager, ProgressBar, Section, StatusBadge } from '../components/common';
import { LossChart } from '../components/loss-chart';
import { formatBytes, formatDate, formatDuration, formatLoss, formatNumber } from '../lib/format';
import { TERMINAL, useJobProgress, type JobArtifact } from '../lib/job-progress';
import { href, navigate } from '../lib/router';
import {
  DEFAULT_QUANTIZATION,
  NUMBER_FIELDS,
  PROMOTE_POLICIES,
  QUANTIZATIONS,
  TARGET_MODULES,
  fieldProblem,
  type NumberField,
} from '../lib/training-fields';
import { useQuery } from '../lib/use-query';

export function TrainingPage({ jobId }: { jobId: string | null }) {
  if (jobId !== null) return <JobView jobId={jobId} />;
  return (
    <>
      <h1>Training</h1>
      <StartForm />
      <JobList />
    </>
  );
}

const CHOICES = `query TrainingChoices {
  adapters(first: 100) { edges { node { id name baseModel { id name contextLength } } } }
  datasets(first: 100) { edges { node { id name status format rowCount } } }
  baseModels { id name contextLength }
}`;

interface Choices {
  adapters: {
    edges: {
      node: {
        id: string;
        name: string;
        baseModel: { id: string; name: string; contextLength: number } | null;
      };
    }[];
  };
  datasets: {
    edges: { node: { id: string; name: string; status: string; format: string; rowCount: number | null } }[];
  };
  baseModels: { id: string; name: string; contextLength: number }[];
}

const NEW_ADAPTER = '__new__';

function StartForm() {
  const { data, error } = useQuery<Choices>(CHOICES);
  const [adapterId, setAdapterId] = useState('');
  const [newAdapter, setNewAdapter] = useState({ name: '', baseModelId: '' });
  const [datasetId, setDatasetId] = useState('');
  const [validationId, setValidationId] = useState('');
  const [promote, setPromote] = useState('IF_BETTER');
  const [quantization, setQuantization] = useState(DEFAULT_QUANTIZATION);
  const [modules, setModules] = useState<string[]>([...TARGET_MODULES]);
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(NUMBER_FIELDS.map((f) => [f.name, String(f.default)])),
  );
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const adapters = data?.adapters.edges.map((e) => e.node) ?? [];
  const ready = data?.datasets.edges.map((e) => e.node).filter((d) => d.status === 'READY') ?? [];
  const effectiveAdapter = adapterId === '' && adapters.length > 0 ? adapters[0]!.id : adapterId;
  const creating = effectiveAdapter === NEW_ADAPTER || (adapters.length === 0 && data !== null);
  const baseModels = data?.baseModels ?? [];
  const contextLength = creating
    ? baseModels.find((b) => b.id === (newAdapter.baseModelId || baseModels[0]?.id))?.contextLength
    : adapters.find((a) => a.id === effectiveAdapter)?.baseModel?.contextLength;
  const effectiveDataset = datasetId === '' ? (ready[0]?.id ?? '') : datasetId;
  const problems = useMemo(
    () =>
      Object.fromEntries(
        NUMBER_FIELDS.map((f) => [f.name, fieldProblem(f, values[f.name] ?? '', contextLength)]),
      ),
    [values, contextLength],
  );
  const invalid = Object.values(problems).some((p) => p !== null) || modules.length === 0;

  const submit = async (e: Event) => {
    e.preventDefault();
    if (invalid || !effectiveDataset) return;
    setBusy(true);
    setSubmitError(null);
    try {
      let id = effectiveAdapter;
      if (creating) {
        const r = await gql<{ createAdapter: { id: string } }>(
          `mutation CreateAdapter($input: CreateAdapterInput!) { createAdapter(input: $input) { id } }`,
          {
            input: { name: newAdapter.name.trim(), baseModelId: newAdapter.baseModelId || baseModels[0]?.id },
          },
        );
        id = r.createAdapter.id;
      }
      const hyperparameters: Record<string, unknown> = { quantization, targetModules: modules };
      for (const f of NUMBER_FIELDS) {
        const raw = values[f.name] ?? '';
        if (raw.trim() !== '') hyperparameters[f.name] = Number(raw);
      }
      const r = await gql<{ startTraining: { id: string } }>(
        `mutation Start($input: StartTrainingInput!) { startTraining(input: $input) { id } }`,
        {
          input: {
            adapterId: id,
            datasetId: effectiveDataset,
            validationDatasetId: validationId === '' ? null : validationId,
            promote,
            hyperparameters,
          },
        },
      );
      navigate('training', r.startTraining.id);
    } catch (err) {
      setSubmitError(err);
    } finally {
      setBusy(false);
    }
  };

  const numberInput = (f: NumberField) => (
    <div class="field" key={f.name}>
      <label for={`hp-${f.name}`}>{f.label}</label>
      <input
        id={`hp-${f.name}`}
        type="number"
        inputMode="decimal"
        min={f.min}
        max={f.name === 'maxSequenceLength' && contextLength ? contextLength : f.max}
        step={f.integer ? 1 : 'any'}
        value={values[f.name]}
        aria-invalid={problems[f.name] ? 'true' : undefined}
        aria-describedby={`hp-${f.name}-help`}
        onInput={(e) => setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })}
      />
      <small id={`hp-${f.name}-help`} class={problems[f.name] ? 'field-error' : 'muted'}>
        {problems[f.name] ?? `${f.help} Default ${f.default}.`}
      </small>
    </div>
  );

  return (
    <Section title="Start a training job">
      <ErrorNote error={error} />
      {data && ready.length === 0 && (
        <p class="note">
          No READY dataset yet: <a href={href('datasets')}>upload one</a> first.
        </p>
      )}
      <form onSubmit={submit}>
        <div class="grid-form">
          <label for="train-adapter">Adapter</label>
          <select
            id="train-adapter"
            value={creating ? NEW_ADAPTER : effectiveAdapter}
            onChange={(e) => setAdapterId((e.target as HTMLSelectElement).value)}
          >
            {adapters.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name} ({a.baseModel?.name ?? 'base model missing'})
              </option>
            ))}
            <option value={NEW_ADAPTER}>New adapter…</option>
          </select>
          {creating && (
            <>
              <label for="train-new-adapter">New adapter name</label>
              <input
                id="train-new-adapter"
                required
                maxLength={100}
                pattern="[A-Za-z0-9][A-Za-z0-9._\-]*"
                title="Letters, digits, '.', '_' and '-'"
                value={newAdapter.name}
                onInput={(e) => setNewAdapter({ ...newAdapter, name: (e.target as HTMLInputElement).value })}
              />
              <label for="train-base-model">Base model</label>
              <select
                id="train-base-model"
                value={newAdapter.baseModelId || baseModels[0]?.id}
                onChange={(e) =>
                  setNewAdapter({ ...newAdapter, baseModelId: (e.target as HTMLSelectElement).value })
                }
              >
                {baseModels.map((b) => (
                  <option key={b.id} value={b.id}>
                    {b.name} (context {b.contextLength})
                  </option>
                ))}
              </select>
            </>
          )}
          <label for="train-dataset">Training dataset</label>
          <select
            id="train-dataset"
            required
            value={effectiveDataset}
            onChange={(e) => setDatasetId((e.target as HTMLSelectElement).value)}
          >
            {ready.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name} ({d.format}, {formatNumber(d.rowCount)} rows)
              </option>
            ))}
          </select>
          <label for="train-validation">Validation dataset</label>
          <select
            id="train-validation"
            value={validationId}
            onChange={(e) => setValidationId((e.target as HTMLSelectElement).value)}
          >
            <option value="">none (a held-out split of the training data)</option>
            {ready.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
          <label for="train-promote">When it succeeds</label>
          <select
            id="train-promote"
            value={promote}
            onChange={(e) => setPromote((e.target as HTMLSelectElement).value)}
          >
            {PROMOTE_POLICIES.map((p) => (
              <option key={p} value={p}>
                {p === 'IF_BETTER'
                  ? 'promote to production if its eval loss is lower (default)'
                  : p === 'ALWAYS'
                    ? 'always promote to production'
                    : 'leave the production alias alone'}
              </option>
            ))}
          </select>
        </div>
        <fieldset>
          <legend>Hyperparameters</legend>
          <div class="fields">{NUMBER_FIELDS.filter((f) => !f.advanced).map(numberInput)}</div>
          <details>
            <summary>More settings</summary>
            <div class="fields">
              {NUMBER_FIELDS.filter((f) => f.advanced).map(numberInput)}
              <div class="field">
                <label for="hp-quantization">Base weights while training</label>
                <select
                  id="hp-quantization"
                  value={quantization}
                  onChange={(e) => setQuantization((e.target as HTMLSelectElement).value)}
                >
                  {QUANTIZATIONS.map((q) => (
                    <option key={q} value={q}>
                      {q}
                      {q === DEFAULT_QUANTIZATION ? ' (default, QLoRA)' : ''}
                    </option>
                  ))}
                </select>
              </div>
            </div>
            <fieldset>
              <legend>Target modules</legend>
              {TARGET_MODULES.map((m) => (
                <label key={m} class="check">
                  <input
                    type="checkbox"
                    checked={modules.includes(m)}
                    onChange={(e) =>
                      setModules(
                        (e.target as HTMLInputElement).checked
                          ? [...modules, m]
                          : modules.filter((x) => x !== m),
                      )
                    }
                  />{' '}
                  {m}
                </label>
              ))}
              {modules.length === 0 && <small class="field-error">Pick at least one module.</small>}
            </fieldset>
          </details>
        </fieldset>
        <ErrorNote error={submitError} />
        <button type="submit" class="primary" disabled={busy || invalid || !effectiveDataset}>
          {busy ? 'Starting…' : 'Start training'}
        </button>
      </form>
    </Section>
  );
}

const JOBS = `query Jobs($after: String) {
  trainingJobs(first: 50, after: $after) {
    edges { node { id kind status createdAt adapter { name } dataset { name } progress { step totalSteps loss } resultVersion { version } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface JobRow {
  id: string;
  kind: string;
  status: string;
  createdAt: string;
  adapter: { name: string } | null;
  dataset: { name: string } | null;
  progress: { step: number; totalSteps: number; loss: number | null } | null;
  resultVersion: { version: number } | null;
}

function JobList() {
  const [after, setAfter] = useState<string | null>(null);
  const { data, error, loading, reload } = useQuery<{
    trainingJobs: { edges: { node: JobRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
  }>(JOBS, { after });
  const rows = data?.trainingJobs.edges.map((e) => e.node) ?? [];
  return (
    <Section
      title="Jobs"
      actions={
        <button type="button" onClick={() => void reload()}>
          Refresh
        </button>
      }
    >
      {loading && !data && <Loading what="jobs" />}
      <ErrorNote error={error} />
      {data && rows.length === 0 && <p class="muted">No training jobs yet.</p>}
      {rows.length > 0 && (
        <table>
          <caption class="sr-only">Training jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Kind</th>
              <th scope="col">Adapter</th>
              <th scope="col">Dataset</th>
              <th scope="col">Status</th>
              <th scope="col">Step</th>
              <th scope="col">Loss</th>
              <th scope="col">Result</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((j) => (
              <tr key={j.id}>
                <td>
                  <a href={href('training', j.id)}>{j.id.slice(0, 12)}…</a>
                </td>
                <td>{j.kind.toLowerCase()}</td>
                <td>{j.adapter?.name ?? '—'}</td>
                <td>{j.dataset?.name ?? '—'}</td>
                <td>
                  <StatusBadge status={j.status} />
                </td>
                <td>{j.progress ? `${j.progress.step} / ${j.progress.totalSteps}` : '—'}</td>
                <td>{formatLoss(j.progress?.loss)}</td>
                <td>{j.resultVersion ? `v${j.resultVersion.version}` : '—'}</td>
                <td>{formatDate(j.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager after={after} pageInfo={data?.trainingJobs.pageInfo} onPage={setAfter} />
    </Section>
  );
}

function JobView({ jobId }: { jobId: string }) {
  const { job, progress, points, error, reload } = useJobProgress(jobId);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const status = progress?.status ?? job?.status ?? 'QUEUED';
  const p = progress ?? (job?.progress ? { ...job.progress, status, message: null } : null);

  const cancel = async () => {
    setCancelError(null);
    try {
      await gql(`mutation Cancel($id: ID!) { cancelTrainingJob(id: $id) { id status } }`, { id: jobId });
      await reload();
    } catch (err) {
      setCancelError(err);
    }
  };

  return (
    <>
      <p>
        <a href={href('training')}>← All jobs</a>
      </p>
      <h1>
        {job && job.kind !== 'TRAINING'
          ? `${job.kind[0]}${job.kind.slice(1).toLowerCase()} job`
          : 'Training job'}{' '}
        <code>{jobId.slice(0, 12)}…</code> <StatusBadge status={status} />
      </h1>
      <ErrorNote error={error} />
      {job === null && !error && <Loading what="job" />}
      {job && (
        <>
          <Section
            title="Progress"
            actions={
              !TERMINAL.has(status) && (
                <button type="button" class="danger" onClick={cancel}>
                  Cancel job
                </button>
              )
            }
          >
            <ErrorNote error={cancelError} />
            {p && p.totalSteps > 0 && (
              <ProgressBar value={p.step} max={p.totalSteps} label="Training progress" />
            )}
            <dl class="facts" aria-live="polite" data-testid="job-progress">
              <dt>Step</dt>
              <dd data-testid="job-step">{p ? `${p.step} / ${p.totalSteps}` : '—'}</dd>
              <dt>Epoch</dt>
              <dd>{p ? p.epoch.toFixed(2) : '—'}</dd>
              <dt>Train loss</dt>
              <dd>{formatLoss(p?.loss)}</dd>
              <dt>Eval loss</dt>
              <dd>{formatLoss(p?.evalLoss)}</dd>
              <dt>Tokens/s</dt>
              <dd>{formatNumber(p?.tokensPerSecond, 1)}</dd>
              <dt>ETA</dt>
              <dd>{TERMINAL.has(status) ? '—' : formatDuration(p?.etaSeconds)}</dd>
            </dl>
            {progress?.message && <p class="muted">{progress.message}</p>}
            {job.error && (
              <p class="note error" role="alert">
                {job.error}
              </p>
            )}
            {job.kind === 'TRAINING' && <LossChart points={points} />}
            {job.artifact && <ArtifactDownload jobId={job.id} artifact={job.artifact} />}
          </Section>
          <Section title="Job">
            <dl class="facts">
              <dt>Adapter</dt>
              <dd>{job.adapter ? <a href={href('adapters', job.adapter.id)}>{job.adapter.name}</a> : '—'}</dd>
              <dt>Dataset</dt>
              <dd>{job.dataset ? <a href={href('datasets', job.dataset.id)}>{job.dataset.name}</a> : '—'}</dd>
              <dt>Validation dataset</dt>
              <dd>{job.validationDataset?.name ?? '—'}</dd>
              <dt>Promote</dt>
              <dd>{job.promote}</dd>
              <dt>Result</dt>
              <dd>
                {job.resultVersion && job.adapter ? (
                  <a href={href('adapters', job.adapter.id)}>version {job.resultVersion.version}</a>
                ) : (
                  '—'
                )}
              </dd>
              <dt>Attempts</dt>
              <dd>{job.attempts}</dd>
              <dt>Created</dt>
              <dd>{formatDate(job.createdAt)}</dd>
              <dt>Started</dt>
              <dd>{formatDate(job.startedAt)}</dd>
              <dt>Finished</dt>
              <dd>{formatDate(job.finishedAt)}</dd>
            </dl>
            <details>
              <summary>{job.kind === 'TRAINING' ? 'Hyperparameters' : 'What the job does'}</summary>
              <pre>{JSON.stringify(job.kind === 'TRAINING' ? job.hyperparameters : job.spec, null, 2)}</pre>
            </details>
          </Section>
        </>
      )}
    </>
  );
}

/** An EXPORT job's file: the URL is asked for on click (the server re-hashes the file before signing). */
function ArtifactDownload({ jobId, artifact }: { jobId: string; artifact: JobArtifact }) {
  const [error, setError] = useState<unknown>(null);
  const download = async () => {
    setError(null);
    try {
      const r = await gql<{ trainingJob: { artifact: { downloadUrl: string } | null } | null }>(
        `query Artifact($id: ID!) { trainingJob(id: $id) { artifact { downloadUrl } } }`,
        { id: jobId },
      );
      const url = r.trainingJob?.artifact?.downloadUrl;
      if (url) location.assign(url);
      else setError(new Error('The file is gone (expired, or its version was deleted).'));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="note" data-testid="artifact">
      <p>
        <strong>{artifact.fileName}</strong> — {artifact.format}
        {artifact.format === 'GGUF' ? ` ${artifact.quantize}` : ''}, {formatBytes(artifact.sizeBytes)}, kept
        until {formatDate(artifact.expiresAt)}. SHA-256 <code>{artifact.sha256}</code>
      </p>
      <button type="button" class="primary" onClick={download}>
        Download {artifact.fileName}
      </button>
      <ErrorNote error={error} />
    </div>
  );
}
