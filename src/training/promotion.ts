/**
 * What a successful training job does with its adapter's `production` alias — the alias the bare adapter
 * name serves (src/services/adapters.ts `resolveReference`: `name` → `production`, else the latest version).
 * `promote` is chosen per job at `startTraining` (ALWAYS | IF_BETTER | NEVER, stored on the job row) and
 * applied by the job handler inside the transaction that registers version N+1, under the customer's row
 * lock, so two jobs finishing together cannot both promote past each other. docs/API.md has the user's view.
 */
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Repositories } from '../db/repositories/index.js';
import type { PromotePolicy, TrainingJob } from '../db/repositories/training-jobs.js';

export const PRODUCTION_ALIAS = 'production';

export interface PromotionDecision {
  /** Point `production` at the new version. */
  promote: boolean;
  /**
   * Not promoted, and the adapter had no `production` alias: point it at the version the bare name served
   * until now, so the new (not better) version does not take over as the "latest".
   */
  pin: AdapterVersion | null;
  /** One line for the job's final progress message and the log. */
  reason: string;
}

/** The held-out eval loss a version recorded at training (imported versions have none). */
export function evalLossOf(version: Pick<AdapterVersion, 'metrics'>): number | null {
  const v = version.metrics?.evalLoss;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * `production`: the version the alias points at (null: no alias). `servedBefore`: the version the bare name
 * served before this job registered its version (the alias's, else the previous latest; null: none).
 */
export function decidePromotion(
  policy: PromotePolicy,
  candidate: AdapterVersion,
  production: AdapterVersion | null,
  servedBefore: AdapterVersion | null,
): PromotionDecision {
  const v = `v${candidate.version}`;
  if (policy === 'NEVER') return { promote: false, pin: null, reason: `promote NEVER: aliases unchanged` };
  if (policy === 'ALWAYS') return { promote: true, pin: null, reason: `promote ALWAYS: production → ${v}` };
  const incumbent = production ?? servedBefore;
  if (incumbent === null) return { promote: true, pin: null, reason: `first version: production → ${v}` };
  const mine = evalLossOf(candidate);
  const theirs = evalLossOf(incumbent);
  const iv = `v${incumbent.version}`;
  if (mine !== null && theirs !== null && mine < theirs) {
    return {
      promote: true,
      pin: null,
      reason: `eval loss ${fmt(mine)} < ${fmt(theirs)} of ${iv}: production → ${v}`,
    };
  }
  const why =
    mine === null
      ? `${v} has no held-out eval loss`
      : theirs === null
        ? `${iv} has no eval loss to compare with`
        : `eval loss ${fmt(mine)} is not below ${fmt(theirs)} of ${iv}`;
  return {
    promote: false,
    pin: production === null ? incumbent : null,
    reason: `not promoted (${why}); production stays ${iv}`,
  };
}

function fmt(x: number): string {
  return x.toPrecision(4);
}

/**
 * Applies the job's policy to its freshly registered version. Call inside the registering transaction
 * (`tx`), after the customer's row lock.
 */
export async function applyPromotion(
  tx: Repositories,
  job: Pick<TrainingJob, 'customerId' | 'adapterId' | 'promote'>,
  candidate: AdapterVersion,
): Promise<PromotionDecision> {
  if (job.promote === 'NEVER') return decidePromotion('NEVER', candidate, null, null);
  const scope = { kind: 'tenant' as const, customerId: job.customerId };
  const alias = (await tx.adapterVersions.listAliases(scope, [job.adapterId])).find(
    (a) => a.alias === PRODUCTION_ALIAS,
  );
  const production = alias === undefined ? null : await tx.adapterVersions.findById(scope, alias.versionId);
  let servedBefore = production;
  if (production === null) {
    const versions = await tx.adapterVersions.listByAdapters(scope, [job.adapterId]);
    servedBefore =
      versions.filter((x) => x.id !== candidate.id && x.version < candidate.version).at(-1) ?? null;
  }
  const decision = decidePromotion(job.promote, candidate, production, servedBefore);
  const target = decision.promote ? candidate : decision.pin;
  if (target !== null) {
    await tx.adapterVersions.setAlias({
      adapterId: job.adapterId,
      alias: PRODUCTION_ALIAS,
      versionId: target.id,
      customerId: job.customerId,
    });
  }
  return decision;
}
