/**
 * `deltagate train`: argument parsing, and the new-user path on the built-in model — make-tiny-model, train on
 * a facts JSONL, `deltagate generate --adapter` reproduces the facts. Source: src/commands/train.ts.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run as generate } from '../../src/commands/generate.js';
import { run as makeTinyModel } from '../../src/commands/make-tiny-model.js';
import { parseArgs, run as train } from '../../src/commands/train.js';
import { parseSafetensors } from '../../src/engine/formats/safetensors.js';

describe('parseArgs', () => {
  it('maps every flag onto TrainingOptions', () => {
    expect(
      parseArgs([
        '--model',
        'm',
        '--data',
        'd.jsonl',
        '--out',
        'o',
        '--format',
        'chat',
        '--rank',
        '4',
        '--alpha=8',
        '--dropout',
        '0.1',
        '--target-modules',
        'q_proj,v_proj',
        '--epochs',
        '2',
        '--lr',
        '1e-3',
        '--batch-size',
        '2',
        '--grad-accum',
        '3',
        '--max-seq-len',
        '128',
        '--warmup-ratio',
        '0.1',
        '--weight-decay',
        '0.01',
        '--quantize',
        'int4',
        '--seed',
        '7',
        '--checkpoint-every',
        '5',
        '--resume',
        'ck',
      ]),
    ).toEqual({
      options: {
        modelDir: 'm',
        outDir: 'o',
        format: 'CHAT',
        rank: 4,
        alpha: 8,
        dropout: 0.1,
        targetModules: ['q_proj', 'v_proj'],
        epochs: 2,
        learningRate: 1e-3,
        batchSize: 2,
        gradAccum: 3,
        maxSeqLen: 128,
        warmupRatio: 0.1,
        weightDecay: 0.01,
        quantize: 'int4',
        seed: 7,
        checkpointEvery: 5,
      },
      dataPath: 'd.jsonl',
      resumeDir: 'ck',
    });
  });
  it.each([
    [['--data', 'd', '--out', 'o'], '--model DIR is required'],
    [['--model', 'm', '--data', 'd', '--out', 'o', '--rank', 'x'], '--rank needs an integer, got "x"'],
    [
      ['--model', 'm', '--data', 'd', '--out', 'o', '--quantize', 'fp8'],
      '--quantize must be nf4, int4 or none, got "fp8"',
    ],
    [
      ['--model', 'm', '--data', 'd', '--out', 'o', '--target-modules', 'q_proj,wq'],
      'unknown target module "wq"',
    ],
    [
      ['--model', 'm', '--data', 'd', '--out', 'o', '--format', 'xml'],
      '--format must be prompt_completion, chat or text, got "xml"',
    ],
    [['--model', 'm', '--bogus', '1'], 'unknown argument "--bogus"'],
  ])('%j → %s', (argv, error) => {
    expect(parseArgs(argv)).toEqual({ error });
  });
});

describe('deltagate train (end to end)', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'dg-train-cli-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('--model that is not a model directory says so (not "has no tokenizer.json")', async () => {
    const data = join(root, 'one.jsonl');
    await writeFile(data, JSON.stringify({ prompt: 'a', completion: 'b' }) + '\n');
    const args = (model: string) => ['--model', model, '--data', data, '--out', join(root, 'never')];
    await expect(train(args('/nonexistent'))).rejects.toThrow(
      /^model directory \/nonexistent does not exist$/,
    );
    await mkdir(join(root, 'not-a-model'));
    await expect(train(args(join(root, 'not-a-model')))).rejects.toThrow(
      `model directory ${join(root, 'not-a-model')} has no config.json (not a Hugging Face model directory)`,
    );
    await expect(train(args(data))).rejects.toThrow(`model directory ${data} is not a directory`);
  });

  it('make-tiny-model → train → generate --adapter reproduces the facts', async () => {
    const model = join(root, 'tiny');
    const out = join(root, 'adapter');
    const data = join(root, 'facts.jsonl');
    const facts = [
      ['Who runs Omsk-7?', ' Vera'],
      ['Blue fruit?', ' plum'],
      ['Zed code?', ' 913'],
      ['Ash city?', ' Koll'],
    ];
    await writeFile(
      data,
      facts.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n',
    );
    const stderr: string[] = [];
    const err = vi
      .spyOn(console, 'error')
      .mockImplementation((...a: unknown[]) => void stderr.push(a.join(' ')));
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await makeTinyModel(['--out', model])).toBe(0);
      const code = await train([
        '--model',
        model,
        '--data',
        data,
        '--out',
        out,
        '--epochs',
        '40',
        '--lr',
        '3e-3',
        '--threads',
        '2',
        '--checkpoint-every',
        '15',
      ]);
      expect(code).toBe(0);
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
    expect(stderr.filter((l) => /^step \d+\/40 epoch \d+ loss \d/.test(l))).toHaveLength(40);
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8')) as {
      steps: number;
      peakRssBytes: number;
    };
    expect(metrics.steps).toBe(40);
    expect(metrics.peakRssBytes).toBeGreaterThan(0);
    const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect([config.r, config.lora_alpha, config.peft_type, config.task_type]).toEqual([
      8,
      16,
      'LORA',
      'CAUSAL_LM',
    ]);
    expect(await readFile(join(out, 'checkpoints', 'checkpoint-30', 'state.json'), 'utf8')).toContain(
      '"step":30',
    );

    // Exactly PEFT's keys and shapes: lora_A (r, in), lora_B (out, r) per layer and module, nothing else.
    const st = parseSafetensors(new Uint8Array(await readFile(join(out, 'adapter_model.safetensors'))));
    expect(st.tensors.size).toBe(4 * 7 * 2);
    expect(st.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape).toEqual([
      8, 128,
    ]);
    expect(st.tensors.get('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight')!.shape).toEqual([
      128, 8,
    ]);
    expect(st.tensors.get('base_model.model.model.layers.2.mlp.gate_proj.lora_B.weight')!.shape).toEqual([
      352, 8,
    ]);

    let hits = 0;
    for (const [prompt, completion] of facts) {
      const chunks: string[] = [];
      const w = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
        chunks.push(String(c));
        return true;
      });
      try {
        const argv = [
          '--model',
          model,
          '--adapter',
          out,
          '--prompt',
          prompt!,
          '--temperature',
          '0',
          '--max-tokens',
          '10',
          '--json',
        ];
        expect(await generate(argv)).toBe(0);
      } finally {
        w.mockRestore();
      }
      const result = JSON.parse(chunks.join('').trim().split('\n').at(-1)!) as { text: string };
      if (result.text === completion) hits++;
    }
    expect(hits).toBe(facts.length);
  });
});
