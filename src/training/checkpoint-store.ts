/**
 * Where training checkpoints go: a tiny interface (`save(step, files)`, `loadLatest()`) so the trainer does
 * not know about disks or buckets, and a directory implementation used by the CLI. The service layer wraps
 * its blob store in the same interface. What goes inside a checkpoint is `checkpoint.ts`'s business.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A checkpoint: file name → bytes (names are plain, no directories). */
export type CheckpointFiles = Record<string, Uint8Array>;

export interface CheckpointStore {
  save(step: number, files: CheckpointFiles): Promise<void>;
  /** The checkpoint with the highest step, or null when there is none. */
  loadLatest(): Promise<{ step: number; files: CheckpointFiles } | null>;
}

const PREFIX = 'checkpoint-';

/**
 * `<dir>/checkpoint-<step>/<file>`. A checkpoint is written to a temporary directory and renamed into
 * place, so a crash mid-write never leaves a half checkpoint that `loadLatest` would pick. Keeps the newest
 * `keep` checkpoints.
 */
export class DirectoryCheckpointStore implements CheckpointStore {
  constructor(
    readonly dir: string,
    private readonly keep = 2,
  ) {}

  private async steps(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => n.startsWith(PREFIX) && /^\d+$/.test(n.slice(PREFIX.length)))
      .map((n) => Number(n.slice(PREFIX.length)))
      .sort((a, b) => a - b);
  }

  async save(step: number, files: CheckpointFiles): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const final = join(this.dir, `${PREFIX}${step}`);
    const tmp = join(this.dir, `.tmp-${PREFIX}${step}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(tmp, name), bytes);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
    const steps = await this.steps();
    for (const old of steps.slice(0, Math.max(0, steps.length - this.keep))) {
      await rm(join(this.dir, `${PREFIX}${old}`), { recursive: true, force: true });
    }
  }

  async loadLatest(): Promise<{ step: number; files: CheckpointFiles } | null> {
    const steps = await this.steps();
    const step = steps.at(-1);
    if (step === undefined) return null;
    const dir = join(this.dir, `${PREFIX}${step}`);
    const files: CheckpointFiles = {};
    for (const name of await readdir(dir)) files[name] = new Uint8Array(await readFile(join(dir, name)));
    return { step, files };
  }
}
