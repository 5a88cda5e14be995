/**
 * Per-customer monthly usage counters (requests, prompt and completion tokens), incremented atomically
 * with an upsert. Generation (issue 5) writes them; quotas (`monthlyTokenLimit`) read them.
 */
import { sql } from 'kysely';
import type { Db } from '../database.js';
import { toNumber } from '../database.js';

export interface Usage {
  customerId: string;
  period: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

/** 'YYYY-MM' in UTC. */
export function usagePeriod(date = new Date()): string {
  return date.toISOString().slice(0, 7);
}

export class UsageRepository {
  constructor(private readonly db: Db) {}

  async add(
    customerId: string,
    delta: { requests?: number; promptTokens?: number; completionTokens?: number },
    period = usagePeriod(),
  ): Promise<void> {
    const requests = delta.requests ?? 0;
    const promptTokens = delta.promptTokens ?? 0;
    const completionTokens = delta.completionTokens ?? 0;
    await this.db
      .insertInto('usage_counters')
      .values({
        customer_id: customerId,
        period,
        requests,
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
      })
      .onConflict((oc) =>
        oc.columns(['customer_id', 'period']).doUpdateSet({
          requests: sql`usage_counters.requests + ${requests}`,
          prompt_tokens: sql`usage_counters.prompt_tokens + ${promptTokens}`,
          completion_tokens: sql`usage_counters.completion_tokens + ${completionTokens}`,
        }),
      )
      .execute();
  }

  async get(customerId: string, period = usagePeriod()): Promise<Usage> {
    const r = await this.db
      .selectFrom('usage_counters')
      .selectAll()
      .where('customer_id', '=', customerId)
      .where('period', '=', period)
      .executeTakeFirst();
    return {
      customerId,
      period,
      requests: toNumber(r?.requests) ?? 0,
      promptTokens: toNumber(r?.prompt_tokens) ?? 0,
      completionTokens: toNumber(r?.completion_tokens) ?? 0,
    };
  }
}
