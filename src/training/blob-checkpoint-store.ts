/**
 * A CheckpointStore over blob storage (S3 or the directory store), used by the training job handler so a
 * job killed on one worker resumes from its last checkpoint on another. Not the checkpoint format
 * (checkpoint.ts) nor the trainer's schedule of saves (trainer.ts); the directory variant for the CLI is
 * checkpoint-store.ts. Layout: `{prefix}step-{n}/{file}` plus `{prefix}step-{n}/manifest.json` written last.
 */
import type { Logger } from 'pino';
import { sha256HexSliced, type BlobStore } from '../storage/blob-store.js';
import type { CheckpointFiles, CheckpointStore } from './checkpoint-store.js';

const MANIFEST = 'manifest.json';
const STEP_RE = /^step-(\d+)\/manifest\.json$/;

interface Manifest {
  step: number;
  files: { name: string; sha256: string; size: number }[];
}

/**
 * A checkpoint counts only once its manifest exists, and it is used only when every file matches the
 * manifest's sha256: a save interrupted mid-way (SIGKILL) or two overlapping runs of one job writing the
 * same step (BullMQ can run a job twice) never produce a checkpoint that is half one and half the other —
 * `loadLatest` then falls back to the previous complete one. Keeps the newest `keep` checkpoints.
 */
export class BlobCheckpointStore implements CheckpointStore {
  constructor(
    private readonly blobs: BlobStore,
    /** Ends with '/', e.g. `checkpointPrefix(customerId, jobId)`. */
    readonly prefix: string,
    private readonly options: { keep?: number; logger?: Logger } = {},
  ) {}

  private async completeSteps(): Promise<number[]> {
    const listed = await this.blobs.list(this.prefix);
    const steps: number[] = [];
    for (const { key } of listed) {
      const m = STEP_RE.exec(key.slice(this.prefix.length));
      if (m) steps.push(Number(m[1]));
    }
    return steps.sort((a, b) => a - b);
  }

  private stepPrefix(step: number): string {
    return `${this.prefix}step-${step}/`;
  }

  async save(step: number, files: CheckpointFiles): Promise<void> {
    const dir = this.stepPrefix(step);
    const manifest: Manifest = { step, files: [] };
    for (const [name, bytes] of Object.entries(files)) {
      const put = await this.blobs.put(dir + name, bytes, { contentType: 'application/octet-stream' });
      manifest.files.push({ name, sha256: put.sha256, size: put.size });
    }
    await this.blobs.put(dir + MANIFEST, Buffer.from(JSON.stringify(manifest)), {
      contentType: 'application/json',
    });
    await this.prune();
  }

  /** Deletes all but the newest `keep` complete checkpoints; a failure only costs storage. */
  private async prune(): Promise<void> {
    const keep = this.options.keep ?? 2;
    try {
      const steps = await this.completeSteps();
      for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
        await this.blobs.deletePrefix(this.stepPrefix(old));
      }
    } catch (err) {
      this.options.logger?.warn({ err, prefix: this.prefix }, 'could not prune old checkpoints');
    }
  }

  async loadLatest(): Promise<{ step: number; files: CheckpointFiles } | null> {
    const steps = await this.completeSteps();
    for (const step of steps.reverse()) {
      const loaded = await this.tryLoad(step);
      if (loaded) return { step, files: loaded };
    }
    return null;
  }

  private async tryLoad(step: number): Promise<CheckpointFiles | null> {
    const dir = this.stepPrefix(step);
    try {
      const manifest = JSON.parse(
        Buffer.from(await this.blobs.get(dir + MANIFEST)).toString('utf8'),
      ) as Manifest;
      const files: CheckpointFiles = {};
      for (const f of manifest.files) {
        const bytes = await this.blobs.get(dir + f.name);
        if (bytes.byteLength !== f.size || (await sha256HexSliced(bytes)) !== f.sha256) {
          this.options.logger?.warn({ step, file: f.name }, 'checkpoint file does not match its manifest');
          return null;
        }
        files[f.name] = bytes;
      }
      return files;
    } catch (err) {
      this.options.logger?.warn({ err, step }, 'checkpoint unreadable; trying an older one');
      return null;
    }
  }

  /** Removes every checkpoint of the job (after it registered its version or failed for good). */
  async clear(): Promise<void> {
    await this.blobs.deletePrefix(this.prefix);
  }
}
