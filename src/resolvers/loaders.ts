/**
 * Per-request DataLoaders for nested fields (an adapter's versions and aliases, a version's dataset or job,
 * a dataset's customer): one batched, tenant-scoped query per field per request instead of one per parent.
 * They go through the services, so they inherit the same authorization as every other read.
 */
import DataLoader from 'dataloader';
import type { Adapter } from '../db/repositories/adapters.js';
import type {
  AdapterAlias,
  AdapterVersion,
  AdapterVersionParent,
} from '../db/repositories/adapter-versions.js';
import type { Customer } from '../db/repositories/customers.js';
import type { Dataset } from '../db/repositories/datasets.js';
import type { TrainingJob } from '../db/repositories/training-jobs.js';
import type { Actor, Services } from '../services/index.js';

export interface Loaders {
  customer: DataLoader<string, Customer | null>;
  dataset: DataLoader<string, Dataset | null>;
  adapter: DataLoader<string, Adapter | null>;
  adapterVersion: DataLoader<string, AdapterVersion | null>;
  trainingJob: DataLoader<string, TrainingJob | null>;
  /** Versions of an adapter, ascending by number. */
  versionsByAdapter: DataLoader<string, AdapterVersion[]>;
  aliasesByAdapter: DataLoader<string, AdapterAlias[]>;
  /** A derived version's parents, in order. */
  parentsByVersion: DataLoader<string, AdapterVersionParent[]>;
}

function byId<T extends { id: string }>(fetch: (ids: readonly string[]) => Promise<T[]>) {
  return new DataLoader<string, T | null>(async (ids) => {
    const found = new Map((await fetch(ids)).map((x) => [x.id, x]));
    return ids.map((id) => found.get(id) ?? null);
  });
}

function groupBy<T>(key: (x: T) => string, fetch: (ids: readonly string[]) => Promise<T[]>) {
  return new DataLoader<string, T[]>(async (ids) => {
    const groups = new Map<string, T[]>(ids.map((id) => [id, []]));
    for (const x of await fetch(ids)) groups.get(key(x))?.push(x);
    return ids.map((id) => groups.get(id) ?? []);
  });
}

export function createLoaders(actor: Actor, s: Services): Loaders {
  return {
    customer: byId((ids) => s.customers.getMany(actor, ids)),
    dataset: byId((ids) => s.datasets.getMany(actor, ids)),
    adapter: byId((ids) => s.adapters.getMany(actor, ids)),
    adapterVersion: byId((ids) => s.adapters.getVersions(actor, ids)),
    trainingJob: byId((ids) => s.trainingJobs.getMany(actor, ids)),
    versionsByAdapter: groupBy(
      (v) => v.adapterId,
      (ids) => s.adapters.versionsOf(actor, ids),
    ),
    aliasesByAdapter: groupBy(
      (a) => a.adapterId,
      (ids) => s.adapters.aliasesOf(actor, ids),
    ),
    parentsByVersion: groupBy(
      (p) => p.versionId,
      (ids) => s.adapters.parentsOf(actor, ids),
    ),
  };
}
