/**
 * The key layout of docs/STORAGE.md, and the validator that keeps every id inside its prefix.
 */
import { describe, expect, it } from 'vitest';
import { InvalidBlobKeyError } from '../../src/storage/blob-store.js';
import {
  adapterFileKey,
  adapterPrefix,
  adapterVersionPrefix,
  assertValidKey,
  assertValidPrefix,
  checkpointPrefix,
  checkpointStepPrefix,
  customerPrefix,
  datasetKey,
  datasetPrefix,
  exportArtifactKey,
  exportPrefix,
  uploadKey,
} from '../../src/storage/keys.js';

describe('key layout', () => {
  it('builds the documented keys', () => {
    expect({
      customer: customerPrefix('c1'),
      dataset: datasetKey('c1', 'd1'),
      datasetPrefix: datasetPrefix('c1', 'd1'),
      adapter: adapterPrefix('c1', 'a1'),
      version: adapterVersionPrefix('c1', 'a1', 3),
      config: adapterFileKey('c1', 'a1', 3, 'config'),
      weights: adapterFileKey('c1', 'a1', 3, 'weights'),
      metrics: adapterFileKey('c1', 'a1', 3, 'metrics'),
      checkpoints: checkpointPrefix('c1', 'j1'),
      step: checkpointStepPrefix('c1', 'j1', 200),
      upload: uploadKey('c1', 'u1'),
      exports: exportPrefix('c1', 'j1'),
      artifact: exportArtifactKey('c1', 'j1', 2, 'model.gguf'),
    }).toEqual({
      customer: 'customers/c1/',
      dataset: 'customers/c1/datasets/d1/data.jsonl',
      datasetPrefix: 'customers/c1/datasets/d1/',
      adapter: 'customers/c1/adapters/a1/',
      version: 'customers/c1/adapters/a1/v3/',
      config: 'customers/c1/adapters/a1/v3/adapter_config.json',
      weights: 'customers/c1/adapters/a1/v3/adapter_model.safetensors',
      metrics: 'customers/c1/adapters/a1/v3/metrics.json',
      checkpoints: 'customers/c1/jobs/j1/checkpoints/',
      step: 'customers/c1/jobs/j1/checkpoints/step-200/',
      upload: 'customers/c1/uploads/u1',
      exports: 'customers/c1/jobs/j1/export/',
      artifact: 'customers/c1/jobs/j1/export/a2/model.gguf',
    });
    expect(() => exportArtifactKey('c1', 'j1', 1, '../x')).toThrow(InvalidBlobKeyError);
  });

  it.each([
    '',
    '.',
    '..',
    'a/b',
    'a\\b',
    'x\u0000',
    'tab\there',
    'nl\n',
    '\u2028',
    'x'.repeat(256),
    'a\ud800',
  ])('refuses the id segment %j in every builder', (bad) => {
    expect(() => customerPrefix(bad)).toThrow(InvalidBlobKeyError);
    expect(() => datasetKey('c1', bad)).toThrow(InvalidBlobKeyError);
    expect(() => adapterVersionPrefix('c1', bad, 1)).toThrow(InvalidBlobKeyError);
    expect(() => checkpointPrefix('c1', bad)).toThrow(InvalidBlobKeyError);
    expect(() => uploadKey(bad, 'u1')).toThrow(InvalidBlobKeyError);
  });

  it('refuses negative, fractional and unsafe version and step numbers', () => {
    for (const n of [-1, 1.5, Number.NaN, 2 ** 60]) {
      expect(() => adapterVersionPrefix('c1', 'a1', n)).toThrow(InvalidBlobKeyError);
      expect(() => checkpointStepPrefix('c1', 'j1', n)).toThrow(InvalidBlobKeyError);
    }
  });

  it('accepts ordinary keys and prefixes, refuses escapes', () => {
    expect(() => assertValidKey('customers/c-1_x/datasets/d.1/data.jsonl')).not.toThrow();
    expect(() => assertValidKey('customers/ünïcödé/x')).not.toThrow();
    expect(() => assertValidPrefix('')).not.toThrow();
    expect(() => assertValidPrefix('customers/c1/')).not.toThrow();
    for (const bad of ['customers/c1', '/customers/', 'customers//', '../']) {
      expect(() => assertValidPrefix(bad)).toThrow(InvalidBlobKeyError);
    }
    expect(() => assertValidKey('a/'.repeat(600) + 'b')).toThrow(/longer than 1024/);
    const err = (() => {
      try {
        assertValidKey('customers/../x');
      } catch (e) {
        return e as InvalidBlobKeyError;
      }
    })();
    expect(err?.code).toBe('BAD_USER_INPUT');
  });
});
