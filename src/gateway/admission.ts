/**
 * Admission as a pure function: given each customer's waiting requests (FIFO), the free KV slots, each
 * customer's running rows and the LoRA slots that could still be placed, which requests join the running
 * batch this step. Customers take turns (round-robin from a rotating cursor), so one tenant's burst never
 * starves another's single request; a per-customer cap bounds a tenant's share of the batch. The loop that
 * applies the plan is scheduler.ts.
 */

export interface WaitingRequest {
  id: number;
  customerId: string;
  /** Adapter version it needs a LoRA slot for (null: base model or served merged). */
  loraVersion: string | null;
  /** False while it cannot run yet (e.g. its merged weights are still being built). */
  ready: boolean;
}

export interface AdmissionInput {
  /** Customers in arrival order of their oldest request; each customer's requests FIFO. */
  waiting: ReadonlyMap<string, readonly WaitingRequest[]>;
  freeKvSlots: number;
  runningByCustomer: ReadonlyMap<string, number>;
  maxRunningPerCustomer: number;
  /** Versions that already hold a LoRA slot, and how many more versions could be placed. */
  placedVersions: ReadonlySet<string>;
  freeLoraSlots: number;
  /** The customer served last (the turn starts with the next one), or null. */
  lastServed: string | null;
}

export interface AdmissionPlan {
  /** Request ids to admit, in order. */
  admit: number[];
  /** The customer served last by this plan (or the input's, when none was). */
  lastServed: string | null;
}

export function planAdmission(input: AdmissionInput): AdmissionPlan {
  const customers = [...input.waiting.keys()];
  const admit: number[] = [];
  let lastServed = input.lastServed;
  if (customers.length === 0 || input.freeKvSlots <= 0) return { admit, lastServed };
  const running = new Map(input.runningByCustomer);
  const placed = new Set(input.placedVersions);
  let freeLora = input.freeLoraSlots;
  let free = input.freeKvSlots;
  const taken = new Map(customers.map((c) => [c, new Set<number>()]));
  const turn = () => (lastServed === null ? 0 : (customers.indexOf(lastServed) + 1) % customers.length);
  // Rounds: each customer may take one request per round, until nothing more fits.
  for (let progress = true; progress && free > 0;) {
    progress = false;
    const start = turn();
    for (let k = 0; k < customers.length && free > 0; k++) {
      const c = customers[(start + k) % customers.length]!;
      if ((running.get(c) ?? 0) >= input.maxRunningPerCustomer) continue;
      const queue = input.waiting.get(c)!;
      const took = taken.get(c)!;
      // The customer's oldest request that can run now (a not-ready one does not block the ones behind it).
      const i = queue.findIndex((q, j) => !took.has(j) && canRun(q, placed, freeLora));
      if (i < 0) continue;
      const r = queue[i]!;
      took.add(i);
      admit.push(r.id);
      free--;
      running.set(c, (running.get(c) ?? 0) + 1);
      if (r.loraVersion !== null && !placed.has(r.loraVersion)) {
        placed.add(r.loraVersion);
        freeLora--;
      }
      lastServed = c;
      progress = true;
    }
  }
  return { admit, lastServed };
}

function canRun(r: WaitingRequest, placed: ReadonlySet<string>, freeLora: number): boolean {
  if (!r.ready) return false;
  return r.loraVersion === null || placed.has(r.loraVersion) || freeLora > 0;
}
