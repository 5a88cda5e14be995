/**
 * Datasets: upload a JSONL file (presigned PUT with a progress bar, then server-side validation), the list with
 * row and token counts, and one dataset's validation errors by line.
 */
import { useState } from 'preact/hooks';
import { describeError, gql } from '../api/graphql';
import { putWithProgress } from '../api/upload';
import { ErrorNote, Loading, Pager, ProgressBar, Section, StatusBadge } from '../components/common';
import { formatBytes, formatDate, formatNumber } from '../lib/format';
import { href } from '../lib/router';
import { useQuery } from '../lib/use-query';

const DATASET_FIELDS = `id name format status rowCount tokenCount sizeBytes createdAt errors { line message }`;
const DATASETS = `query Datasets($after: String) {
  datasets(first: 100, after: $after) { edges { node { ${DATASET_FIELDS} } } pageInfo { hasNextPage endCursor } }
}`;
const DATASET = `query Dataset($id: ID!) { dataset(id: $id) { ${DATASET_FIELDS} sha256 } }`;

export interface DatasetRow {
  id: string;
  name: string;
  format: string;
  status: string;
  rowCount: number | null;
  tokenCount: number | null;
  sizeBytes: number | null;
  createdAt: string;
  errors: { line: number; message: string }[];
  sha256?: string | null;
}

const FORMATS = [
  ['CHAT', 'Chat — {"messages":[{"role","content"}]}'],
  ['PROMPT_COMPLETION', 'Prompt/completion — {"prompt","completion"}'],
  ['TEXT', 'Text — {"text"}'],
] as const;

export function DatasetsPage({ datasetId }: { datasetId: string | null }) {
  if (datasetId !== null) return <DatasetDetail id={datasetId} />;
  return <DatasetList />;
}

function DatasetList() {
  const [after, setAfter] = useState<string | null>(null);
  const list = useQuery<{
    datasets: { edges: { node: DatasetRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
  }>(DATASETS, { after });
  const rows = list.data?.datasets.edges.map((e) => e.node) ?? [];
  return (
    <>
      <h1>Datasets</h1>
      <UploadForm onDone={() => void list.reload()} />
      <Section title="Your datasets">
        {list.loading && !list.data && <Loading what="datasets" />}
        <ErrorNote error={list.error} />
        {rows.length === 0 && list.data && <p class="muted">No datasets yet: upload a JSONL file above.</p>}
        {rows.length > 0 && (
          <table>
            <caption class="sr-only">Datasets</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Format</th>
                <th scope="col">Status</th>
                <th scope="col">Rows</th>
                <th scope="col">Tokens</th>
                <th scope="col">Size</th>
                <th scope="col">Uploaded</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id}>
                  <td>
                    <a href={href('datasets', d.id)}>{d.name}</a>
                  </td>
                  <td>{d.format}</td>
                  <td>
                    <StatusBadge status={d.status} />
                    {d.errors.length > 0 && <span class="muted"> {d.errors.length} error(s)</span>}
                  </td>
                  <td>{formatNumber(d.rowCount)}</td>
                  <td>{formatNumber(d.tokenCount)}</td>
                  <td>{formatBytes(d.sizeBytes)}</td>
                  <td>{formatDate(d.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pager after={after} pageInfo={list.data?.datasets.pageInfo} onPage={setAfter} />
      </Section>
    </>
  );
}

type UploadPhase =
  { kind: 'idle' } | { kind: 'uploading'; sent: number; total: number } | { kind: 'validating' };

function UploadForm({ onDone }: { onDone(): void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const [format, setFormat] = useState<string>('CHAT');
  const [phase, setPhase] = useState<UploadPhase>({ kind: 'idle' });
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<DatasetRow | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setError(null);
    setResult(null);
    try {
      const { createDatasetUpload: ticket } = await gql<{
        createDatasetUpload: { url: string; headers: Record<string, string>; dataset: { id: string } };
      }>(
        `mutation CreateUpload($input: CreateDatasetUploadInput!) {
          createDatasetUpload(input: $input) { url headers dataset { id } }
        }`,
        { input: { name: name.trim() || file.name, format, sizeBytes: file.size } },
      );
      setPhase({ kind: 'uploading', sent: 0, total: file.size });
      await putWithProgress(ticket.url, ticket.headers, file, (sent, total) =>
        setPhase({ kind: 'uploading', sent, total }),
      );
      setPhase({ kind: 'validating' });
      const { completeDatasetUpload: ds } = await gql<{ completeDatasetUpload: DatasetRow }>(
        `mutation Complete($id: ID!) { completeDatasetUpload(id: $id) { ${DATASET_FIELDS} } }`,
        { id: ticket.dataset.id },
      );
      setResult(ds);
      onDone();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setPhase({ kind: 'idle' });
    }
  };

  return (
    <Section title="Upload a dataset">
      <form class="grid-form" onSubmit={submit}>
        <label for="dataset-file">JSONL file</label>
        <input
          id="dataset-file"
          type="file"
          accept=".jsonl,.json,.txt,application/jsonl,application/x-ndjson"
          required
          onChange={(e) => {
            const f = (e.target as HTMLInputElement).files?.[0] ?? null;
            setFile(f);
            if (f && name === '') setName(f.name.replace(/\.jsonl?$/i, ''));
          }}
        />
        <label for="dataset-name">Name</label>
        <input
          id="dataset-name"
          required
          maxLength={200}
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
        />
        <label for="dataset-format">Format (one JSON object per line)</label>
        <select
          id="dataset-format"
          value={format}
          onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}
        >
          {FORMATS.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        {phase.kind === 'uploading' && (
          <ProgressBar value={phase.sent} max={phase.total} label={`Uploading ${file?.name ?? 'the file'}`} />
        )}
        {phase.kind === 'validating' && (
          <p class="muted" role="status">
            Validating…
          </p>
        )}
        {error && (
          <p class="note error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={phase.kind !== 'idle' || !file}>
          Upload
        </button>
      </form>
      {result && <DatasetSummary dataset={result} />}
    </Section>
  );
}

function DatasetSummary({ dataset: d }: { dataset: DatasetRow }) {
  return (
    <div class="dataset-summary" data-testid="dataset-summary">
      <p>
        <a href={href('datasets', d.id)}>{d.name}</a>: <StatusBadge status={d.status} /> ·{' '}
        {formatNumber(d.rowCount)} rows · {formatNumber(d.tokenCount)} tokens · {formatBytes(d.sizeBytes)}
      </p>
      <DatasetErrors errors={d.errors} />
    </div>
  );
}

export function DatasetErrors({ errors }: { errors: DatasetRow['errors'] }) {
  if (errors.length === 0) return null;
  return (
    <table class="errors" data-testid="dataset-errors">
      <caption>Validation errors ({errors.length})</caption>
      <thead>
        <tr>
          <th scope="col">Line</th>
          <th scope="col">Problem</th>
        </tr>
      </thead>
      <tbody>
        {errors.map((e, i) => (
          <tr key={i}>
            <td>{e.line === 0 ? 'file' : e.line}</td>
            <td>{e.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DatasetDetail({ id }: { id: string }) {
  const { data, error, loading } = useQuery<{ dataset: DatasetRow | null }>(DATASET, { id });
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const remove = async () => {
    if (!confirm('Delete this dataset? Jobs that used it keep their adapters.')) return;
    try {
      await gql(`mutation Delete($id: ID!) { deleteDataset(id: $id) }`, { id });
      location.hash = href('datasets');
    } catch (err) {
      setDeleteError(err);
    }
  };
  return (
    <>
      <p>
        <a href={href('datasets')}>← All datasets</a>
      </p>
      {loading && !data && <Loading what="dataset" />}
      <ErrorNote error={error} />
      {data && !data.dataset && <p class="note">No such dataset.</p>}
      {data?.dataset && (
        <Section
          title={`Dataset ${data.dataset.name}`}
          actions={
            <button type="button" class="danger" onClick={remove}>
              Delete
            </button>
          }
        >
          <ErrorNote error={deleteError} />
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={data.dataset.status} />
            </dd>
            <dt>Format</dt>
            <dd>{data.dataset.format}</dd>
            <dt>Rows</dt>
            <dd>{formatNumber(data.dataset.rowCount)}</dd>
            <dt>Tokens</dt>
            <dd>{formatNumber(data.dataset.tokenCount)}</dd>
            <dt>Size</dt>
            <dd>{formatBytes(data.dataset.sizeBytes)}</dd>
            <dt>SHA-256</dt>
            <dd>
              <code>{data.dataset.sha256 ?? '—'}</code>
            </dd>
            <dt>Uploaded</dt>
            <dd>{formatDate(data.dataset.createdAt)}</dd>
          </dl>
          <DatasetErrors errors={data.dataset.errors} />
          {data.dataset.status === 'READY' && (
            <p>
              <a href={href('training')}>Train an adapter on it →</a>
            </p>
          )}
        </Section>
      )}
    </>
  );
}
