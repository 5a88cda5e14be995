/**
 * The console's training form shows the API's defaults and enforces its limits before sending
 * (console/src/lib/training-fields.ts). These tests hold the two equal: every default, and for each field the
 * form accepts exactly the values `normalizeHyperparameters` accepts at and around its bounds.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_QUANTIZATION,
  NUMBER_FIELDS,
  QUANTIZATIONS,
  TARGET_MODULES,
  fieldProblem,
} from '../../console/src/lib/training-fields.js';
import { LINEAR_MODULES } from '../../src/engine/formats/hf-config.js';
import type { BaseModel } from '../../src/services/base-models.js';
import { HYPERPARAMETER_DEFAULTS, normalizeHyperparameters } from '../../src/services/training-runner.js';

const base = { contextLength: 1024 } as BaseModel;

function serverAccepts(name: string, value: number): boolean {
  try {
    normalizeHyperparameters({ [name]: value }, base);
    return true;
  } catch {
    return false;
  }
}

describe('the console training form', () => {
  it('shows the API defaults for every hyperparameter', () => {
    const shown: Record<string, unknown> = Object.fromEntries(NUMBER_FIELDS.map((f) => [f.name, f.default]));
    shown.quantization = DEFAULT_QUANTIZATION;
    shown.targetModules = [...TARGET_MODULES];
    expect(shown).toEqual(HYPERPARAMETER_DEFAULTS);
    expect([...TARGET_MODULES]).toEqual([...LINEAR_MODULES]);
    expect(QUANTIZATIONS).toContain(HYPERPARAMETER_DEFAULTS.quantization);
  });

  it.each(NUMBER_FIELDS.map((f) => [f.name, f] as const))('accepts what the API accepts: %s', (_name, f) => {
    const max = f.name === 'maxSequenceLength' ? base.contextLength : f.max;
    const probes = [
      f.min - 1,
      f.min - 1e-7,
      f.min,
      f.min + 1e-7,
      f.min + 1,
      f.default,
      max - 1,
      max,
      max + 1e-7,
      max + 1,
    ];
    if (!f.integer) probes.push(f.min + (max - f.min) / 3);
    for (const v of probes) {
      const form = fieldProblem(f, String(v), base.contextLength) === null;
      expect({ value: v, form }).toEqual({ value: v, form: serverAccepts(f.name, v) });
    }
  });
});
