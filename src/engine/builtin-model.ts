/**
 * The built-in base model `deltagate-tiny`: a 4-layer GQA Llama with random (seeded) weights and a
 * byte-level vocabulary, written as an ordinary Hugging Face directory so every code path that reads it
 * is the one that reads real models. It is for tests, demos and the no-download quick start; it generates
 * noise until an adapter is trained on it. The file formats are in `formats/`; `deltagate make-tiny-model`
 * (src/commands/make-tiny-model.ts) writes it from the command line.
 */
import { randomBytes } from 'node:crypto';
import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeCheckpoint, type Tensor32 } from './formats/checkpoint.js';
import { expectedTensors, parseModelConfig } from './formats/hf-config.js';

export const BUILTIN_MODEL_ID = 'deltagate-tiny';
export const BUILTIN_DEFAULT_SEED = 0;

/** The fixed config.json (other components depend on these numbers). */
export const BUILTIN_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 128,
  intermediate_size: 352,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  vocab_size: 259,
  max_position_embeddings: 512,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-5,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  initializer_range: 0.02,
  torch_dtype: 'float32',
});

const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

/** `<0x41>`: the SentencePiece byte-piece spelling that the ByteFallback decoder understands. */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * A tokenizer.json with no merges: every UTF-8 byte of the input becomes its byte piece (id 3 + byte) via
 * BPE byte fallback, so any text round-trips exactly; ByteFallback + Fuse decode the bytes back.
 */
export function builtinTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((s, i) => (vocab[s] = i));
  for (let b = 0; b < 256; b++) vocab[bytePiece(b)] = 3 + b;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/**
 * ChatML turns spelled in plain bytes (the vocabulary has no <|im_start|> token). BOS is not in the
 * template: the tokenizer adds it (add_bos_token), so rendering + encoding yields exactly one.
 */
export const BUILTIN_CHAT_TEMPLATE =
  "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

export function builtinTokenizerConfig(): Record<string, unknown> {
  return {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 512,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template: BUILTIN_CHAT_TEMPLATE,
  };
}

/** SplitMix32-style PRNG (Mulberry32): small, seedable, identical on every platform. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal(0, std) by Box–Muller, rounded to float32 as it is stored. */
function fillNormal(out: Float32Array, std: number, next: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    const u1 = 1 - next(); // (0, 1]: log never sees 0
    const u2 = next();
    const r = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
}

/** The built-in weights: norms 1, everything else normal(0, 0.02) as transformers' `_init_weights`. */
export function builtinTensors(seed = BUILTIN_DEFAULT_SEED): Map<string, Tensor32> {
  const config = parseModelConfig(BUILTIN_CONFIG);
  const next = mulberry32(seed);
  const tensors = new Map<string, Tensor32>();
  for (const { name, shape } of expectedTensors(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else fillNormal(data, 0.02, next);
    tensors.set(name, { shape, data });
  }
  return tensors;
}

/** Write the built-in model as an HF directory (config, safetensors, tokenizer files, generation config). */
export async function makeTinyModel(outDir: string, opts: { seed?: number } = {}): Promise<void> {
  const seed = opts.seed ?? BUILTIN_DEFAULT_SEED;
  await writeCheckpoint(outDir, { ...BUILTIN_CONFIG }, builtinTensors(seed));
  const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';
  await writeFile(join(outDir, 'tokenizer.json'), json(builtinTokenizerJson()));
  await writeFile(join(outDir, 'tokenizer_config.json'), json(builtinTokenizerConfig()));
  await writeFile(
    join(outDir, 'generation_config.json'),
    json({ bos_token_id: 1, eos_token_id: 2, max_length: 512 }),
  );
  await writeFile(
    join(outDir, 'README.md'),
    `# ${BUILTIN_MODEL_ID}\n\nBuilt-in deltagate test model, seed ${seed}. Random weights; byte vocabulary.\n`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `${dataDir}/models/deltagate-tiny`, written once: into a temp dir beside it, then renamed, so a reader
 * never sees a half-written model and concurrent callers (two workers at start-up) both succeed.
 */
export async function ensureBuiltinModel(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'models', BUILTIN_MODEL_ID);
  if (await exists(join(dir, 'model.safetensors'))) return dir;
  await mkdir(dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await makeTinyModel(tmp);
    try {
      await rename(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another process won the race: its (identical) model stands.
      if (
        !(code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'EPERM') ||
        !(await exists(join(dir, 'model.safetensors')))
      )
        throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}
