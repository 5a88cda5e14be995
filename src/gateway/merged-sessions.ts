/**
 * The merged-weight sessions of one model's scheduler (MERGED rows, and AUTO rows while the policy merges):
 * built off the loop on demand, at most `max` kept (the least recently used out first, never one in use),
 * dropped when the session worker they lived in dies and built again when asked. Mechanism only: which rows
 * run merged, and what a failed build means for them, is the scheduler's (scheduler.ts).
 */
import type { Logger } from 'pino';
import type { LoraAdapter } from '../engine/formats/peft.js';
import { SessionWorkerDiedError } from '../inference/session-host.js';
import type { ServeSession, ServingModel } from '../inference/serving-model.js';
import { invariant } from '../shared/invariant.js';

interface Entry {
  session: Promise<ServeSession>;
  ready: ServeSession | null;
  lastUsed: number;
}

export interface MergedSessionsDeps {
  model: ServingModel;
  /** Merged sessions kept (each holds a full copy of the weights). */
  max: number;
  logger: Logger;
  /** Versions whose merged session must not be evicted now (rows run on it, or AUTO serves it). */
  inUse: () => ReadonlySet<string>;
  /** A build failed for another reason than its worker's death (which only drops it: built again on demand). */
  onFailed: (versionId: string, err: unknown) => void;
}

/** A session of a worker that died (RemoteSession.alive); sessions on the main thread never die. */
const dead = (s: ServeSession) => (s as { alive?: boolean }).alive === false;

export class MergedSessions {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly deps: MergedSessionsDeps) {}

  /** Whether `versionId`'s merged session exists or is being built. */
  has(versionId: string): boolean {
    return this.entries.has(versionId);
  }

  /** `versionId`'s merged session when it is built, else null. */
  ready(versionId: string): ServeSession | null {
    return this.entries.get(versionId)?.ready ?? null;
  }

  /** The built session a call runs on now (marked used for the LRU). */
  use(versionId: string): ServeSession {
    const e = this.entries.get(versionId);
    invariant(e?.ready, () => `no built merged session for ${versionId}`);
    e.lastUsed = performance.now();
    return e.ready;
  }

  /** Starts building `versionId`'s merged session (off the event loop) unless it exists or is being built. */
  ensure(versionId: string, adapter: LoraAdapter): void {
    if (this.entries.has(versionId)) return;
    const t0 = performance.now();
    const entry: Entry = { session: this.deps.model.mergedSession(adapter), ready: null, lastUsed: t0 };
    this.entries.set(versionId, entry);
    const forget = () => {
      if (this.entries.get(versionId) === entry) this.entries.delete(versionId);
    };
    entry.session.then(
      (session) => {
        // Its worker died right after creating it: built again on demand.
        if (dead(session)) return forget();
        entry.ready = session;
        this.deps.logger.info(
          { versionId, ms: Math.round(performance.now() - t0), event: 'merged-built' },
          'merged weights ready',
        );
        this.evict();
      },
      (err: unknown) => {
        forget();
        // The worker died while building it: the scheduler counts the death and asks again.
        if (err instanceof SessionWorkerDiedError) return;
        this.deps.logger.error(
          { err, versionId },
          'could not build merged weights; the adapter stays side-loaded',
        );
        this.deps.onFailed(versionId, err);
      },
    );
  }

  /** Drops the sessions of a worker that died; returns their versions. */
  dropDead(): string[] {
    const gone: string[] = [];
    for (const [v, e] of this.entries)
      if (e.ready && dead(e.ready)) {
        this.entries.delete(v);
        gone.push(v);
      }
    return gone;
  }

  /** Releases them all (the scheduler's close). */
  close(): void {
    for (const e of this.entries.values()) void e.session.then((s) => s.release()).catch(() => undefined);
    this.entries.clear();
  }

  private evict(): void {
    const inUse = this.deps.inUse();
    const idle = [...this.entries].filter(([v, e]) => e.ready && !inUse.has(v));
    idle.sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let count = [...this.entries.values()].filter((e) => e.ready).length;
    for (const [v, e] of idle) {
      if (count <= this.deps.max) break;
      this.entries.delete(v);
      void e.ready!.release().catch(() => undefined);
      count--;
    }
  }
}
