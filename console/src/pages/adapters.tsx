/**
 * Adapters: the list (create one), and one adapter's version history — metrics, where each version came from
 * (its training job and dataset), its aliases — with promote to `production`, roll back in one click, pin,
 * and a download of the version's weights.
 */
import { useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { ErrorNote, Loading, Pager, Section } from '../components/common';
import { DeriveForm, ExportForm } from './derive-forms';
import { formatBytes, formatDate, formatLoss } from '../lib/format';
import { href } from '../lib/router';
import { useQuery } from '../lib/use-query';

export const PRODUCTION = 'production';

const ADAPTERS = `query Adapters($after: String) {
  adapters(first: 100, after: $after) {
    edges { node { id name description createdAt pinned baseModel { name } latestVersion { version } aliases { alias version { version } } } }
    pageInfo { hasNextPage endCursor }
  }
  baseModels { id name }
}`;

interface AdapterRow {
  id: string;
  name: string;
  description: string | null;
  createdAt: string;
  pinned: boolean;
  baseModel: { name: string } | null;
  latestVersion: { version: number } | null;
  aliases: { alias: string; version: { version: number } }[];
}

export function AdaptersPage({ adapterId }: { adapterId: string | null }) {
  if (adapterId !== null) return <AdapterDetail id={adapterId} />;
  return <AdapterList />;
}

function AdapterList() {
  const [after, setAfter] = useState<string | null>(null);
  const { data, error, loading, reload } = useQuery<{
    adapters: { edges: { node: AdapterRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    baseModels: { id: string; name: string }[];
  }>(ADAPTERS, { after });
  const [form, setForm] = useState({ name: '', baseModelId: '', description: '' });
  const [formError, setFormError] = useState<unknown>(null);
  const rows = data?.adapters.edges.map((e) => e.node) ?? [];

  const create = async (e: Event) => {
    e.preventDefault();
    setFormError(null);
    try {
      await gql(
        `mutation CreateAdapter($input: CreateAdapterInput!) { createAdapter(input: $input) { id } }`,
        {
          input: {
            name: form.name.trim(),
            baseModelId: form.baseModelId || data?.baseModels[0]?.id,
            description: form.description.trim() || null,
          },
        },
      );
      setForm({ name: '', baseModelId: '', description: '' });
      await reload();
    } catch (err) {
      setFormError(err);
    }
  };

  return (
    <>
      <h1>Adapters</h1>
      <Section title="Your adapters">
        {loading && !data && <Loading what="adapters" />}
        <ErrorNote error={error} />
        {data && rows.length === 0 && (
          <p class="muted">No adapters yet: create one below, or start a training job.</p>
        )}
        {rows.length > 0 && (
          <table>
            <caption class="sr-only">Adapters</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Base model</th>
                <th scope="col">Latest</th>
                <th scope="col">Production</th>
                <th scope="col">Pinned</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((a) => (
                <tr key={a.id}>
                  <td>
                    <a href={href('adapters', a.id)}>{a.name}</a>
                  </td>
                  <td>{a.baseModel?.name ?? '—'}</td>
                  <td>{a.latestVersion ? `v${a.latestVersion.version}` : '—'}</td>
                  <td>{aliasVersion(a.aliases, PRODUCTION)}</td>
                  <td>{a.pinned ? 'yes' : 'no'}</td>
                  <td>{formatDate(a.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pager after={after} pageInfo={data?.adapters.pageInfo} onPage={setAfter} />
      </Section>
      <Section title="New adapter">
        <form class="grid-form" onSubmit={create}>
          <label for="adapter-name">Name</label>
          <input
            id="adapter-name"
            required
            maxLength={100}
            value={form.name}
            onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })}
          />
          <label for="adapter-base">Base model</label>
          <select
            id="adapter-base"
            value={form.baseModelId}
            onChange={(e) => setForm({ ...form, baseModelId: (e.target as HTMLSelectElement).value })}
          >
            {data?.baseModels.map((b) => (
              <option key={b.id} value={b.id}>
                {b.name}
              </option>
            ))}
          </select>
          <label for="adapter-description">Description (optional)</label>
          <input
            id="adapter-description"
            maxLength={1000}
            value={form.description}
            onInput={(e) => setForm({ ...form, description: (e.target as HTMLInputElement).value })}
          />
          <ErrorNote error={formError} />
          <button type="submit" class="primary">
            Create adapter
          </button>
        </form>
      </Section>
    </>
  );
}

function aliasVersion(aliases: { alias: string; version: { version: number } }[], alias: string): string {
  const a = aliases.find((x) => x.alias === alias);
  return a ? `v${a.version.version}` : '—';
}

const VERSION_FIELDS = `id version rank alpha targetModules createdAt metrics sizeBytes sha256 aliases
  trainingJob { id status kind } dataset { id name }
  parents { versionId weight version { id version } }
  derivation { operation method rank energy report }`;

const ADAPTER = `query Adapter($id: ID!, $after: String) {
  adapter(id: $id) {
    id name description pinned createdAt baseModel { id name }
    aliases { alias updatedAt version { id version } }
    versions(first: 100, after: $after) {
      edges { node { ${VERSION_FIELDS} } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

interface VersionRow {
  id: string;
  version: number;
  rank: number;
  alpha: number;
  targetModules: string[];
  createdAt: string;
  metrics: Record<string, unknown> | null;
  sizeBytes: number;
  sha256: string;
  aliases: string[];
  trainingJob: { id: string; status: string; kind: string } | null;
  dataset: { id: string; name: string } | null;
  parents: { versionId: string; weight: number; version: { id: string; version: number } | null }[];
  derivation: {
    operation: string;
    method: string | null;
    rank: number | null;
    energy: number | null;
    report: Record<string, unknown>;
  } | null;
}

interface AdapterData {
  adapter: {
    id: string;
    name: string;
    description: string | null;
    pinned: boolean;
    createdAt: string;
    baseModel: { id: string; name: string } | null;
    aliases: { alias: string; updatedAt: string; version: { id: string; version: number } }[];
    versions: { edges: { node: VersionRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
  } | null;
}

/** Where a version came from: its training job and dataset, the versions it was derived from, or an import. */
function Origin({ v }: { v: VersionRow }) {
  if (v.derivation) {
    const d = v.derivation;
    const how =
      d.operation === 'SHRINK'
        ? `shrink${d.rank != null ? ` to rank ${d.rank}` : d.energy != null ? ` to ${d.energy} of the energy` : ''}`
        : `${(d.method ?? '').toLowerCase()} merge`;
    return (
      <span data-testid={`lineage-${v.version}`}>
        {how} of{' '}
        {v.parents.map((p, i) => (
          <span key={p.versionId}>
            {i > 0 ? ', ' : ''}
            {p.version ? `v${p.version.version}` : 'a deleted version'}
            {d.operation === 'MERGE' ? ` × ${p.weight}` : ''}
          </span>
        ))}
        {v.trainingJob && (
          <>
            {' '}
            (<a href={href('training', v.trainingJob.id)}>job</a>)
          </>
        )}
        <details>
          <summary>report</summary>
          <pre>{JSON.stringify(d.report, null, 2)}</pre>
        </details>
      </span>
    );
  }
  if (v.trainingJob)
    return (
      <>
        <a href={href('training', v.trainingJob.id)}>training job</a>
        {v.dataset && (
          <>
            {' on '}
            <a href={href('datasets', v.dataset.id)}>{v.dataset.name}</a>
          </>
        )}
      </>
    );
  return <>imported</>;
}

function metric(m: Record<string, unknown> | null, key: string): number | null {
  const v = m?.[key];
  return typeof v === 'number' ? v : null;
}

function AdapterDetail({ id }: { id: string }) {
  const [after, setAfter] = useState<string | null>(null);
  const { data, error, loading, reload } = useQuery<AdapterData>(ADAPTER, { id, after });
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const a = data?.adapter;

  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setActionError(null);
    try {
      await fn();
      await reload();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(false);
    }
  };
  const promote = (versionId: string) =>
    act(() =>
      gql(`mutation Promote($input: SetAdapterAliasInput!) { setAdapterAlias(input: $input) { id } }`, {
        input: { adapterId: id, alias: PRODUCTION, versionId },
      }),
    );
  const download = (versionId: string) =>
    act(async () => {
      // Asked for on click: signing re-hashes the file on the server, so the list does not ask for every URL.
      const r = await gql<{ adapterVersion: { downloadUrl: string } | null }>(
        `query Download($id: ID!) { adapterVersion(id: $id) { downloadUrl } }`,
        { id: versionId },
      );
      if (r.adapterVersion) location.assign(r.adapterVersion.downloadUrl);
    });
  const remove = (v: VersionRow) =>
    confirm(`Delete version ${v.version}? Its files are removed for good.`) &&
    act(() => gql(`mutation DeleteVersion($id: ID!) { deleteAdapterVersion(id: $id) }`, { id: v.id }));
  const pin = (pinned: boolean) =>
    act(() =>
      gql(
        `mutation Pin($id: ID!, $pinned: Boolean!) { setAdapterPinned(adapterId: $id, pinned: $pinned) { id pinned } }`,
        { id, pinned },
      ),
    );

  if (loading && !data) return <Loading what="adapter" />;
  if (error && !data) return <ErrorNote error={error} />;
  if (!a) return <p class="note">No such adapter.</p>;
  const versions = a.versions.edges.map((e) => e.node);
  const production = a.aliases.find((x) => x.alias === PRODUCTION);
  // Roll back: production moves to the newest version older than the one it points at now.
  const previous = production
    ? [...versions]
        .filter((v) => v.version < production.version.version)
        .sort((x, y) => y.version - x.version)[0]
    : undefined;

  return (
    <>
      <p>
        <a href={href('adapters')}>← All adapters</a>
      </p>
      <h1>Adapter {a.name}</h1>
      <ErrorNote error={actionError} />
      <Section
        title="Serving"
        actions={
          <button type="button" onClick={() => pin(!a.pinned)} disabled={busy} aria-pressed={a.pinned}>
            {a.pinned ? 'Unpin' : 'Pin in the gateway'}
          </button>
        }
      >
        <dl class="facts">
          <dt>Base model</dt>
          <dd>{a.baseModel?.name ?? '—'}</dd>
          <dt>Production</dt>
          <dd data-testid="production-version">
            {production ? `version ${production.version.version}` : 'not set (the latest version serves)'}
          </dd>
          <dt>Aliases</dt>
          <dd>
            {a.aliases.length ? a.aliases.map((x) => `${x.alias} → v${x.version.version}`).join(', ') : '—'}
          </dd>
          {a.description && (
            <>
              <dt>Description</dt>
              <dd>{a.description}</dd>
            </>
          )}
        </dl>
        {previous && (
          <button type="button" onClick={() => promote(previous.id)} disabled={busy}>
            Roll back production to version {previous.version}
          </button>
        )}
      </Section>
      <Section title="Versions">
        {versions.length === 0 && <p class="muted">No versions yet: train one on the Training page.</p>}
        {versions.length > 0 && (
          <table>
            <caption class="sr-only">Versions of {a.name}, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Aliases</th>
                <th scope="col">Eval loss</th>
                <th scope="col">Train loss</th>
                <th scope="col">Rank / alpha</th>
                <th scope="col">Came from</th>
                <th scope="col">Size</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {versions.map((v) => (
                <tr key={v.id} data-testid={`version-${v.version}`}>
                  <td>v{v.version}</td>
                  <td>{v.aliases.join(', ') || '—'}</td>
                  <td>{formatLoss(metric(v.metrics, 'evalLoss'))}</td>
                  <td>{formatLoss(metric(v.metrics, 'finalLoss'))}</td>
                  <td>
                    {v.rank} / {v.alpha}
                  </td>
                  <td>
                    <Origin v={v} />
                  </td>
                  <td>{formatBytes(v.sizeBytes)}</td>
                  <td>{formatDate(v.createdAt)}</td>
                  <td class="row-actions">
                    {production?.version.id !== v.id && (
                      <button
                        type="button"
                        onClick={() => promote(v.id)}
                        disabled={busy}
                        aria-label={`Promote version ${v.version} to production`}
                      >
                        Promote
                      </button>
                    )}
                    <button
                      type="button"
                      onClick={() => download(v.id)}
                      disabled={busy}
                      aria-label={`Download version ${v.version}`}
                    >
                      Download
                    </button>
                    {v.aliases.length === 0 && (
                      <button
                        type="button"
                        class="danger"
                        onClick={() => remove(v)}
                        disabled={busy}
                        aria-label={`Delete version ${v.version}`}
                      >
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pager after={after} pageInfo={a.versions.pageInfo} onPage={setAfter} />
      </Section>
      <DeriveForm adapterId={a.id} versions={versions} />
      <ExportForm versions={versions} />
    </>
  );
}
