/**
 * The adapter page's ΔW actions, each a queued job with progress on the same subscription as training:
 * derive a version (SHRINK one version to a lower rank or an energy; MERGE several with weights and a method)
 * and export a version merged into its base model (GGUF for llama.cpp / Ollama, or a Hugging Face .tar).
 */
import { useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { ErrorNote, Section } from '../components/common';
import { navigate } from '../lib/router';

export interface VersionChoice {
  id: string;
  version: number;
  rank: number;
}

const DERIVE = `mutation Derive($input: DeriveAdapterVersionInput!) { deriveAdapterVersion(input: $input) { id } }`;
const EXPORT = `mutation Export($input: ExportAdapterVersionInput!) { exportAdapterVersion(input: $input) { id } }`;

export function DeriveForm({ adapterId, versions }: { adapterId: string; versions: VersionChoice[] }) {
  const [operation, setOperation] = useState<'SHRINK' | 'MERGE'>('SHRINK');
  const [source, setSource] = useState('');
  const [target, setTarget] = useState<'rank' | 'energy'>('rank');
  const [rank, setRank] = useState('');
  const [energy, setEnergy] = useState('0.99');
  const [method, setMethod] = useState('SVD');
  const [weights, setWeights] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (versions.length === 0) return null;
  const shrinkSource = versions.find((v) => v.id === source) ?? versions[versions.length - 1]!;
  const picked = versions.filter((v) => (weights[v.id] ?? '').trim() !== '');

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const num = (v: string) => (v.trim() === '' ? undefined : Number(v));
      const input =
        operation === 'SHRINK'
          ? {
              adapterId,
              operation,
              sources: [{ versionId: shrinkSource.id }],
              ...(target === 'rank' ? { rank: num(rank) } : { energy: num(energy) }),
            }
          : {
              adapterId,
              operation,
              method,
              sources: picked.map((v) => ({ versionId: v.id, weight: Number(weights[v.id]) })),
              rank: method === 'SVD' ? num(rank) : undefined,
            };
      const r = await gql<{ deriveAdapterVersion: { id: string } }>(DERIVE, { input });
      navigate('training', r.deriveAdapterVersion.id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title="Derive a version">
      <form onSubmit={submit}>
        <fieldset class="segmented">
          <legend>Operation</legend>
          <label class="check">
            <input
              type="radio"
              name="derive-op"
              checked={operation === 'SHRINK'}
              onChange={() => setOperation('SHRINK')}
            />{' '}
            Shrink one version
          </label>
          <label class="check">
            <input
              type="radio"
              name="derive-op"
              checked={operation === 'MERGE'}
              onChange={() => setOperation('MERGE')}
            />{' '}
            Merge versions
          </label>
        </fieldset>
        {operation === 'SHRINK' ? (
          <div class="grid-form">
            <label for="derive-source">Version</label>
            <select
              id="derive-source"
              value={shrinkSource.id}
              onChange={(e) => setSource((e.target as HTMLSelectElement).value)}
            >
              {versions.map((v) => (
                <option key={v.id} value={v.id}>
                  v{v.version} (rank {v.rank})
                </option>
              ))}
            </select>
            <label for="derive-target">Keep</label>
            <select
              id="derive-target"
              value={target}
              onChange={(e) => setTarget((e.target as HTMLSelectElement).value as 'rank' | 'energy')}
            >
              <option value="rank">a rank</option>
              <option value="energy">a fraction of the energy (rank chosen per module)</option>
            </select>
            {target === 'rank' ? (
              <>
                <label for="derive-rank">Rank</label>
                <input
                  id="derive-rank"
                  type="number"
                  min={1}
                  max={Math.max(1, shrinkSource.rank - 1)}
                  step={1}
                  required
                  value={rank}
                  onInput={(e) => setRank((e.target as HTMLInputElement).value)}
                />
              </>
            ) : (
              <>
                <label for="derive-energy">Energy kept, (0, 1]</label>
                <input
                  id="derive-energy"
                  type="number"
                  min={0.0001}
                  max={1}
                  step="any"
                  required
                  value={energy}
                  onInput={(e) => setEnergy((e.target as HTMLInputElement).value)}
                />
              </>
            )}
          </div>
        ) : (
          <>
            <div class="grid-form">
              <label for="derive-method">Method</label>
              <select
                id="derive-method"
                value={method}
                onChange={(e) => setMethod((e.target as HTMLSelectElement).value)}
              >
                <option value="SVD">SVD — best rank-r approximation of the weighted sum</option>
                <option value="CAT">CAT — factors side by side, exact sum</option>
                <option value="LINEAR">LINEAR — weighted sum of the factors (equal ranks)</option>
              </select>
              {method === 'SVD' && (
                <>
                  <label for="derive-merge-rank">Result rank (optional)</label>
                  <input
                    id="derive-merge-rank"
                    type="number"
                    min={1}
                    step={1}
                    value={rank}
                    onInput={(e) => setRank((e.target as HTMLInputElement).value)}
                  />
                </>
              )}
            </div>
            <fieldset>
              <legend>Weights (leave empty to leave a version out; two or more)</legend>
              <div class="fields">
                {versions.map((v) => (
                  <div class="field" key={v.id}>
                    <label for={`derive-w-${v.id}`}>Weight of v{v.version}</label>
                    <input
                      id={`derive-w-${v.id}`}
                      type="number"
                      step="any"
                      value={weights[v.id] ?? ''}
                      onInput={(e) =>
                        setWeights({ ...weights, [v.id]: (e.target as HTMLInputElement).value })
                      }
                    />
                  </div>
                ))}
              </div>
            </fieldset>
          </>
        )}
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy || (operation === 'MERGE' && picked.length < 2)}>
          {operation === 'SHRINK' ? 'Shrink' : 'Merge'}
        </button>
      </form>
    </Section>
  );
}

export function ExportForm({ versions }: { versions: VersionChoice[] }) {
  const [versionId, setVersionId] = useState('');
  const [format, setFormat] = useState('GGUF');
  const [quantize, setQuantize] = useState('Q8_0');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (versions.length === 0) return null;
  const chosen = versions.find((v) => v.id === versionId) ?? versions[versions.length - 1]!;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await gql<{ exportAdapterVersion: { id: string } }>(EXPORT, {
        input: { versionId: chosen.id, format, ...(format === 'GGUF' ? { quantize } : {}) },
      });
      navigate('training', r.exportAdapterVersion.id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Export a merged model">
      <form class="grid-form" onSubmit={submit}>
        <label for="export-version">Version</label>
        <select
          id="export-version"
          value={chosen.id}
          onChange={(e) => setVersionId((e.target as HTMLSelectElement).value)}
        >
          {versions.map((v) => (
            <option key={v.id} value={v.id}>
              v{v.version}
            </option>
          ))}
        </select>
        <label for="export-format">Format</label>
        <select
          id="export-format"
          value={format}
          onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}
        >
          <option value="GGUF">GGUF — one file for llama.cpp / Ollama</option>
          <option value="HF">Hugging Face — a .tar of the model directory (F32)</option>
        </select>
        {format === 'GGUF' && (
          <>
            <label for="export-quantize">Weights</label>
            <select
              id="export-quantize"
              value={quantize}
              onChange={(e) => setQuantize((e.target as HTMLSelectElement).value)}
            >
              <option value="NONE">F32</option>
              <option value="F16">F16</option>
              <option value="Q8_0">Q8_0</option>
              <option value="Q4_0">Q4_0</option>
            </select>
          </>
        )}
        <ErrorNote error={error} />
        <button type="submit" class="primary" disabled={busy}>
          Export
        </button>
      </form>
    </Section>
  );
}
