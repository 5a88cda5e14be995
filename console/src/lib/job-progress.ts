/**
 * A training job's live state: its stored history first (the `trainingJob` query), then the
 * `trainingJobProgress` subscription. Every event is a full snapshot, so a duplicate or a missed one never
 * misleads; after the socket comes back the history is fetched again and merged, so the chart has no hole for
 * the time it was away. An event's evalLoss is the latest eval so far: a new eval point is recorded only when
 * it changes.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { onReconnected, subscribe } from '../api/subscriptions';
import type { LossPoint } from '../components/loss-chart';

export interface Progress {
  status: string;
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number | null;
  evalLoss: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  etaSeconds: number | null;
  message: string | null;
}

export const JOB_FIELDS = `id kind spec status error attempts createdAt startedAt finishedAt hyperparameters promote
  adapter { id name } dataset { id name } validationDataset { id name } resultVersion { id version }
  progress { step totalSteps epoch loss evalLoss learningRate tokensPerSecond etaSeconds }
  lossHistory { step loss evalLoss }
  artifact { fileName format quantize sizeBytes sha256 expiresAt }`;

export interface JobArtifact {
  fileName: string;
  format: string;
  quantize: string;
  sizeBytes: number;
  sha256: string;
  expiresAt: string;
}

export interface JobData {
  id: string;
  /** TRAINING, or SHRINK / MERGE / EXPORT (deriveAdapterVersion, exportAdapterVersion). */
  kind: string;
  spec: Record<string, unknown> | null;
  artifact: JobArtifact | null;
  status: string;
  error: string | null;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  hyperparameters: Record<string, unknown>;
  promote: string;
  adapter: { id: string; name: string } | null;
  dataset: { id: string; name: string } | null;
  validationDataset: { id: string; name: string } | null;
  resultVersion: { id: string; version: number } | null;
  progress: Omit<Progress, 'status' | 'message'> | null;
  lossHistory: { step: number; loss: number; evalLoss: number | null }[];
}

const PROGRESS = `subscription Progress($id: ID!) {
  trainingJobProgress(id: $id) { status step totalSteps epoch loss evalLoss learningRate tokensPerSecond etaSeconds message }
}`;

export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

export interface JobProgressState {
  job: JobData | null;
  progress: Progress | null;
  points: LossPoint[];
  error: unknown;
  /** Reloads the job row (after cancel, at a terminal status). */
  reload(): Promise<void>;
}

function sortedPoints(map: Map<number, LossPoint>): LossPoint[] {
  return [...map.values()].sort((a, b) => a.step - b.step);
}

export function useJobProgress(jobId: string): JobProgressState {
  const [job, setJob] = useState<JobData | null>(null);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [points, setPoints] = useState<LossPoint[]>([]);
  const [error, setError] = useState<unknown>(null);
  const byStep = useRef(new Map<number, LossPoint>());
  const lastEval = useRef<number | null>(null);

  const mergeHistory = (history: JobData['lossHistory']) => {
    for (const p of history) {
      const prev = byStep.current.get(p.step);
      byStep.current.set(p.step, {
        step: p.step,
        loss: p.loss,
        evalLoss: p.evalLoss ?? prev?.evalLoss ?? null,
      });
      if (p.evalLoss != null) lastEval.current = p.evalLoss;
    }
    setPoints(sortedPoints(byStep.current));
  };

  const load = async (): Promise<JobData | null> => {
    try {
      const { trainingJob } = await gql<{ trainingJob: JobData | null }>(
        `query Job($id: ID!) { trainingJob(id: $id) { ${JOB_FIELDS} } }`,
        {
          id: jobId,
        },
      );
      setJob(trainingJob);
      if (trainingJob) mergeHistory(trainingJob.lossHistory);
      return trainingJob;
    } catch (err) {
      setError(err);
      return null;
    }
  };

  useEffect(() => {
    byStep.current = new Map();
    lastEval.current = null;
    setPoints([]);
    setProgress(null);
    let stop: (() => void) | null = null;
    let cancelled = false;
    void load().then((loaded) => {
      if (cancelled || loaded === null) return;
      stop = subscribe<{ trainingJobProgress: Progress }>(
        PROGRESS,
        { id: jobId },
        {
          next: ({ trainingJobProgress: e }) => {
            setProgress(e);
            if (e.step > 0 && e.loss != null) {
              const prev = byStep.current.get(e.step);
              let evalLoss = prev?.evalLoss ?? null;
              if (e.evalLoss != null && e.evalLoss !== lastEval.current) {
                evalLoss = e.evalLoss;
                lastEval.current = e.evalLoss;
              }
              byStep.current.set(e.step, { step: e.step, loss: e.loss, evalLoss });
              setPoints(sortedPoints(byStep.current));
            }
          },
          error: (err) => setError(err),
          // The server completes the stream at a terminal status: reload the row (result version, error).
          complete: () => void load(),
        },
      );
    });
    const offReconnect = onReconnected(() => void load());
    return () => {
      cancelled = true;
      stop?.();
      offReconnect();
    };
  }, [jobId]);

  return { job, progress, points, error, reload: async () => void (await load()) };
}
