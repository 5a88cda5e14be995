// Hardening, through the API: adapters that could never generate (weights of 3.4e38, lora_alpha 1e308) and
// malformed files (__metadata__: null, a lone surrogate in the header, base64 with line breaks) are refused by
// importAdapterVersion as BAD_USER_INPUT naming the tensor, and leave no version behind. They used to import
// as valid versions whose every generate failed with INTERNAL_SERVER_ERROR (a NaN logit in the sampler).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_CONFIG } from '../../src/engine/builtin-model.js';
import { linearShape, parseModelConfig } from '../../src/engine/formats/hf-config.js';
import { peftWeightKey, serializePeftAdapter, type LoraWeights } from '../../src/engine/formats/peft.js';
import { ADMIN_KEY, gql, makePeftAdapter, ok, startHarness, type Harness } from './harness.js';

const BASE = parseModelConfig(BUILTIN_CONFIG);

/** A q/v rank-2 adapter of the built-in model with every weight `value`. */
function constantAdapter(value: number, alpha = 4) {
  const weights = new Map<string, LoraWeights>();
  for (let l = 0; l < BASE.numLayers; l++) {
    for (const m of ['q_proj', 'v_proj'] as const) {
      const { inFeatures, outFeatures } = linearShape(BASE, m);
      weights.set(`${l}.${m}`, {
        a: new Float32Array(2 * inFeatures).fill(value),
        b: new Float32Array(outFeatures * 2).fill(value),
      });
    }
  }
  return serializePeftAdapter({
    rank: 2,
    alpha,
    useRslora: false,
    scale: alpha / 2,
    dropout: 0,
    targetModules: ['q_proj', 'v_proj'],
    baseModelName: 'deltagate-tiny',
    weights,
  });
}

/** A safetensors file whose header is `header` (padded to 8 bytes) with no data. */
function rawSafetensors(header: string): Uint8Array {
  const json = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '), 'utf8');
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

const IMPORT = `mutation($i: ImportAdapterVersionInput!) { importAdapterVersion(input: $i) { id version } }`;

describe('importAdapterVersion refuses hostile adapters', () => {
  let h: Harness;
  let key = '';
  let adapterId = '';

  beforeAll(async () => {
    h = await startHarness('sqlite+fs', {}, { runWorker: false });
    key = (await ok(h, ADMIN_KEY, 'mutation { createCustomer(input: { name: "hostile" }) { secret } }'))
      .createCustomer.secret;
    adapterId = (
      await ok(
        h,
        key,
        'mutation { createAdapter(input: { name: "h", baseModelId: "deltagate-tiny" }) { id } }',
      )
    ).createAdapter.id;
  });
  afterAll(async () => h?.close());

  const tryImport = async (adapterConfig: unknown, weightsBase64: string) => {
    const r = await gql(h, key, IMPORT, { i: { adapterId, adapterConfig, weightsBase64 } });
    const e = r.errors?.[0] as { message: string; extensions?: Record<string, unknown> } | undefined;
    return { code: e?.extensions?.code, tensor: e?.extensions?.tensor, message: e?.message ?? '' };
  };

  it('refuses weights of 3.4e38 and lora_alpha 1e308, naming the tensor', async () => {
    const huge = constantAdapter(3.4e38);
    const r1 = await tryImport(huge.adapterConfig, Buffer.from(huge.weights).toString('base64'));
    expect(r1).toMatchObject({ code: 'BAD_USER_INPUT', tensor: peftWeightKey(0, 'q_proj', 'A') });

    const fine = makePeftAdapter({ rank: 2 });
    const r2 = await tryImport({ ...fine.adapterConfig, lora_alpha: 1e308 }, fine.weightsBase64);
    expect(r2.code).toBe('BAD_USER_INPUT');
    expect(r2.message).toMatch(/lora_alpha 1e\+308 .* scale/);

    // Each value in range, the product not: scale 2 · r 2 · 100 · 100 per weight.
    const loud = constantAdapter(100);
    const r3 = await tryImport(loud.adapterConfig, Buffer.from(loud.weights).toString('base64'));
    expect(r3).toMatchObject({ code: 'BAD_USER_INPUT', tensor: peftWeightKey(0, 'q_proj', 'B') });
  });

  it('refuses __metadata__: null and a lone surrogate in the header', async () => {
    const cfg = makePeftAdapter().adapterConfig;
    for (const header of ['{"__metadata__":null}', '{"__metadata__":{"format":"\\ud800"}}']) {
      const r = await tryImport(cfg, Buffer.from(rawSafetensors(header)).toString('base64'));
      expect([header, r.code, r.message]).toEqual([
        header,
        'BAD_USER_INPUT',
        expect.stringMatching(/safetensors/),
      ]);
    }
  });

  it('refuses base64 with embedded line breaks (MIME wrapping)', async () => {
    const peft = makePeftAdapter();
    const wrapped = peft.weightsBase64.replace(/(.{76})/g, '$1\n');
    const r = await tryImport(peft.adapterConfig, wrapped);
    expect(r.code).toBe('BAD_USER_INPUT');
    expect(r.message).toMatch(/base64/);
  });

  it('left no version behind, and a sane adapter still imports', async () => {
    const before = await ok(
      h,
      key,
      'query($id: ID!) { adapter(id: $id) { versions { edges { node { id } } } } }',
      {
        id: adapterId,
      },
    );
    expect(before.adapter.versions.edges).toEqual([]);
    const peft = makePeftAdapter();
    const v = (
      await ok(h, key, IMPORT, {
        i: { adapterId, adapterConfig: peft.adapterConfig, weightsBase64: peft.weightsBase64 },
      })
    ).importAdapterVersion;
    expect(v.version).toBe(1);
  });
});
