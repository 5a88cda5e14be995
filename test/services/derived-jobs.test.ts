// The shapes deriveAdapterVersion / exportAdapterVersion accept (src/services/derived-jobs.ts), checked
// without SQL: every field's rule, defaults filled so that equal requests compare equal (idempotency keys),
// and values GraphQL cannot carry (NaN, Infinity) refused all the same for other callers.
import { describe, expect, it } from 'vitest';
import {
  normalizeDeriveInput,
  normalizeExportInput,
  type DeriveVersionInput,
} from '../../src/services/derived-jobs.js';

function refusal(f: () => unknown): { code?: string; field?: unknown; message: string } | null {
  try {
    f();
    return null;
  } catch (err) {
    const e = err as { code?: string; details?: { field?: unknown }; message: string };
    return { code: e.code, field: e.details?.field, message: e.message };
  }
}

const merge = (over: Partial<DeriveVersionInput>): DeriveVersionInput => ({
  adapterId: 'ada_x',
  operation: 'MERGE',
  method: 'CAT',
  sources: [{ versionId: 'adv_a' }, { versionId: 'adv_b', weight: -0.5 }],
  ...over,
});

describe('normalizeDeriveInput', () => {
  it('fills defaults: weight 1, null for what is not given', () => {
    expect(normalizeDeriveInput(merge({}))).toEqual({
      operation: 'MERGE',
      sources: [
        { versionId: 'adv_a', weight: 1 },
        { versionId: 'adv_b', weight: -0.5 },
      ],
      method: 'CAT',
      rank: null,
      energy: null,
    });
    expect(
      normalizeDeriveInput({
        adapterId: 'ada_x',
        operation: 'SHRINK',
        sources: [{ versionId: 'adv_a', weight: null }],
        energy: 0.9,
      }),
    ).toEqual({
      operation: 'SHRINK',
      sources: [{ versionId: 'adv_a', weight: 1 }],
      method: null,
      rank: null,
      energy: 0.9,
    });
  });

  it.each([
    [{ sources: [{ versionId: 'adv_a', weight: NaN }, { versionId: 'adv_b' }] }, 'sources[0].weight'],
    [{ sources: [{ versionId: 'adv_a' }, { versionId: 'adv_b', weight: Infinity }] }, 'sources[1].weight'],
    [{ sources: [{ versionId: 'adv_a' }, { versionId: 'adv_a' }] }, 'sources[1].versionId'],
    [{ sources: [{ versionId: 'adv_a' }] }, 'sources'],
    [{ sources: Array.from({ length: 17 }, (_, i) => ({ versionId: `adv_${i}` })) }, 'sources'],
    [{ method: null }, 'method'],
    [{ rank: 2 }, 'rank'],
    [{ method: 'SVD', rank: 1.5 }, 'rank'],
    [{ method: 'SVD', rank: 0 }, 'rank'],
    [{ energy: 0.5 }, 'energy'],
    [{ operation: 'SHRINK', method: null, sources: [{ versionId: 'adv_a' }], energy: 0 }, 'energy'],
    [{ operation: 'SHRINK', method: null, sources: [{ versionId: 'adv_a' }], energy: NaN }, 'energy'],
    [{ operation: 'SHRINK', method: 'CAT', sources: [{ versionId: 'adv_a' }], rank: 2 }, 'method'],
    [
      { operation: 'SHRINK', method: null, sources: [{ versionId: 'adv_a', weight: -1 }], rank: 2 },
      'sources[0].weight',
    ],
    [{ operation: 'SHRINK', method: null, sources: [{ versionId: 'adv_a' }] }, 'rank'],
    [{ operation: 'BOGUS' as 'SHRINK' }, 'operation'],
  ] as [Partial<DeriveVersionInput>, string][])('refuses %j naming %s', (over, field) => {
    expect(refusal(() => normalizeDeriveInput(merge(over)))).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });
});

describe('normalizeExportInput', () => {
  it('defaults quantize to NONE; HF takes nothing else', () => {
    expect(normalizeExportInput({ versionId: 'adv_a', format: 'GGUF' })).toEqual({
      operation: 'EXPORT',
      versionId: 'adv_a',
      format: 'GGUF',
      quantize: 'NONE',
    });
    expect(
      refusal(() => normalizeExportInput({ versionId: 'adv_a', format: 'HF', quantize: 'Q4_0' })),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'quantize' });
    expect(refusal(() => normalizeExportInput({ versionId: 'adv_a', format: 'ONNX' as 'HF' }))).toMatchObject(
      { code: 'BAD_USER_INPUT', field: 'format' },
    );
  });
});
