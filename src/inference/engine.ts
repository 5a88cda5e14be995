/**
 * The inference facade the service layer and the CLI hold: `Engine.load(dir, options)` then
 * `engine.generate(request, onDelta?)` / `engine.generateBatch(requests, onDelta?)`. Composition only:
 * sessions and adapters are model.ts, the sampling loop generator.ts.
 */
import type { ModelConfig } from '../engine/formats/hf-config.js';
import type { LoraAdapter } from '../engine/formats/peft.js';
import type { TextTokenizer } from '../engine/formats/tokenizer.js';
import { Generator, type DeltaCallback, type GenerateRequest, type GenerateResult } from './generator.js';
import { LoadedModel, type ModelLoadOptions } from './model.js';

export class Engine {
  private readonly generator: Generator;

  constructor(readonly model: LoadedModel) {
    this.generator = new Generator(model);
  }

  static async load(dir: string, options: ModelLoadOptions = {}): Promise<Engine> {
    return new Engine(await LoadedModel.load(dir, options));
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  get tokenizer(): TextTokenizer | null {
    return this.model.tokenizer;
  }

  /** Throws AdapterShapeMismatchError / BadInputError when the adapter does not fit this base model. */
  validateAdapter(adapter: LoraAdapter): void {
    this.model.validateAdapter(adapter);
  }

  generate(request: GenerateRequest, onDelta?: DeltaCallback): Promise<GenerateResult> {
    return this.generator.generate(request, onDelta);
  }

  generateBatch(
    requests: readonly GenerateRequest[],
    onDelta?: (index: number, delta: string) => void,
  ): Promise<GenerateResult[]> {
    return this.generator.generateBatch(requests, onDelta);
  }

  close(): Promise<void> {
    return this.model.close();
  }
}

export type { GenerateRequest, GenerateResult, DeltaCallback, FinishReason } from './generator.js';
export type { ModelLoadOptions, LoraMode } from './model.js';
