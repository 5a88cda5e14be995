/**
 * The serving grid and the execution provider as plain data: a base model's `servingQuantization` (nf4 unless
 * configured), `engineLoadOptions` for each grid × provider, and the training session's options — 'cuda'
 * must reach onnxruntime as ['cuda', 'cpu']. Pure: no CUDA build is needed (none is installed here).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import 'reflect-metadata';
import { makeTinyModel } from '../../src/engine/builtin-model.js';
import { executionProvidersFor } from '../../src/engine/onnx/session.js';
import type { ModelLoadOptions } from '../../src/inference/model.js';
import type { GraphQLContext } from '../../src/resolvers/context.js';
import { graphql } from '../../src/resolvers/graphql-runtime.js';
import { buildDeltagateSchema } from '../../src/resolvers/schema.js';
import { BaseModelRegistry } from '../../src/services/base-models.js';
import { engineLoadOptions, type EngineLoadOptions } from '../../src/services/serving-grid.js';
import { resolveOptions } from '../../src/training/options.js';
import { trainingSessionConfig } from '../../src/training/trainer.js';

describe('engineLoadOptions', () => {
  it.each<
    [Parameters<typeof engineLoadOptions>[0]['servingQuantization'], 'cpu' | 'cuda', EngineLoadOptions]
  >([
    [
      'nf4',
      'cpu',
      {
        quantize: 'nf4',
        nf4Execution: 'dequantized',
        mergeOrder: 'quantize-then-merge',
        session: { executionProviders: ['cpu'] },
      },
    ],
    [
      'nf4',
      'cuda',
      {
        quantize: 'nf4',
        nf4Execution: 'bnb4',
        mergeOrder: 'quantize-then-merge',
        session: { executionProviders: ['cuda', 'cpu'] },
      },
    ],
    [
      'int4',
      'cpu',
      { quantize: 'int4', mergeOrder: 'quantize-then-merge', session: { executionProviders: ['cpu'] } },
    ],
    [
      'int4',
      'cuda',
      {
        quantize: 'int4',
        mergeOrder: 'quantize-then-merge',
        session: { executionProviders: ['cuda', 'cpu'] },
      },
    ],
    [
      'none',
      'cuda',
      {
        quantize: 'none',
        mergeOrder: 'quantize-then-merge',
        session: { executionProviders: ['cuda', 'cpu'] },
      },
    ],
  ])('%s on %s', (servingQuantization, executionProvider, expected) => {
    const options = engineLoadOptions({ servingQuantization }, { executionProvider });
    expect(options).toEqual(expected);
    // What generation hands to Engine.load / LoadedModel.load.
    const load: ModelLoadOptions = options;
    expect(load.session?.executionProviders).toEqual(executionProvidersFor(executionProvider));
  });
});

describe('training sessions', () => {
  const base = { modelDir: '/m', data: { rows: [] }, format: 'TEXT' as const };

  it('carry the configured execution provider, CPU as the fallback', () => {
    expect(trainingSessionConfig(resolveOptions({ ...base, executionProvider: 'cuda', threads: 3 }))).toEqual(
      {
        enableCpuMemArena: false,
        executionProviders: ['cuda', 'cpu'],
        threads: 3,
      },
    );
    expect(trainingSessionConfig(resolveOptions(base))).toEqual({
      enableCpuMemArena: false,
      executionProviders: ['cpu'],
    });
  });

  it('refuse an unknown provider before loading anything', () => {
    expect(() => resolveOptions({ ...base, executionProvider: 'tpu' as 'cpu' })).toThrow(
      /execution provider must be cpu or cuda/,
    );
  });
});

describe('BaseModelRegistry serving grid', () => {
  let root: string;
  let dir: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dg-serving-grid-'));
    dir = join(root, 'tiny');
    await makeTinyModel(dir, { seed: 0 });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("defaults to nf4 (training's default grid) and keeps a configured one", async () => {
    const registry = await BaseModelRegistry.load([
      { id: 'plain', dir },
      { id: 'fast', dir, servingQuantization: 'int4' },
      { id: 'float', dir, servingQuantization: 'none' },
    ]);
    expect(registry.require('plain').servingQuantization).toBe('nf4');
    expect(registry.require('fast').servingQuantization).toBe('int4');
    expect(registry.require('float').servingQuantization).toBe('none');

    // GraphQL shows it as the ServingQuantization enum.
    const result = await graphql.graphql({
      schema: await buildDeltagateSchema(),
      source: '{ baseModels { id servingQuantization } }',
      contextValue: { services: { baseModels: registry } } as unknown as GraphQLContext,
    });
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({
      baseModels: [
        { id: 'plain', servingQuantization: 'NF4' },
        { id: 'fast', servingQuantization: 'INT4' },
        { id: 'float', servingQuantization: 'NONE' },
      ],
    });
  });
});
