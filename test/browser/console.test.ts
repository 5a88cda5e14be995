/**
 * The web console in real Chromium against the real server (embedded defaults: SQLite, blob directory,
 * in-process queue, built-in model), built from console/src for this run. One user story, step by step:
 * a bad key is refused; the admin creates a customer and copies its key; the customer uploads a dataset with a
 * bad line and sees the line error, uploads a good one, starts a training job and watches the loss chart gain
 * points — through a network blip that drops the subscription — promotes and rolls back a version, streams a
 * playground answer beside the base model's; a revoked key signs the console out. No page logs an error.
 * Screenshots of every page go to test-artifacts/console/.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, makePeftAdapter, ok, startHarness, type Harness } from '../e2e/harness.js';
import { FACTS } from '../e2e/fixtures/facts.js';
import { startBlipProxy, type BlipProxy } from './blip-proxy.js';
import { lowContrastText, openBrowser, unlabelledControls, type BrowserSession } from './chromium.js';

/** 16 prompt/completion rows: 4 optimizer steps an epoch at the default batch size. */
const DATASET = Array.from({ length: 4 }, (_, i) =>
  FACTS.map(([prompt, completion]) => JSON.stringify({ prompt: `${prompt} (${i})`, completion })),
)
  .flat()
  .join('\n');
const BAD_DATASET = `${JSON.stringify({ prompt: 'a', completion: 'b' })}\n{"prompt": "no completion"\n`;

let h: Harness;
let proxy: BlipProxy;
let b: BrowserSession;
let page: Page;
let consoleDir: string;
let customerKey = '';

async function signIn(key: string): Promise<void> {
  await page.goto(proxy.url + '/');
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('API key').press('Enter'); // the keyboard alone signs in
}

/** Waits (up to `timeout`) for the locator's text to contain `text`. */
async function hasText(locator: Locator, text: string, options: { timeout?: number } = {}): Promise<void> {
  await expect
    .poll(async () => (await locator.textContent()) ?? '', { timeout: options.timeout ?? 15_000 })
    .toContain(text);
}

async function hasExactText(
  locator: Locator,
  text: string,
  options: { timeout?: number } = {},
): Promise<void> {
  await expect
    .poll(async () => ((await locator.textContent()) ?? '').trim(), { timeout: options.timeout ?? 15_000 })
    .toBe(text);
}

async function shows(
  locator: Locator,
  options: { timeout?: number; state?: 'visible' | 'attached' } = {},
): Promise<void> {
  await locator.waitFor({ state: options.state ?? 'visible', timeout: options.timeout ?? 15_000 });
}

/** Every control labelled, every text at WCAG AA contrast, on the page as it is now. */
async function expectAccessible(): Promise<void> {
  expect(await unlabelledControls(page)).toEqual([]);
  expect(await lowContrastText(page)).toEqual([]);
}

beforeAll(async () => {
  consoleDir = mkdtempSync(join(tmpdir(), 'dg-console-'));
  execFileSync(process.execPath, ['console/build.mjs', '--out', consoleDir], { stdio: 'pipe' });
  h = await startHarness('sqlite+fs', { DELTAGATE_CONSOLE_DIR: consoleDir });
  proxy = await startBlipProxy(h.server.port);
  b = await openBrowser();
  page = b.page;
}, 120_000);

afterAll(async () => {
  await b?.close();
  await proxy?.close();
  await h?.close();
  rmSync(consoleDir, { recursive: true, force: true });
});

describe('the web console in Chromium', () => {
  it('serves the built console at / under a strict CSP, with nothing from another origin', async () => {
    const res = await fetch(`${h.server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    const asset = /src="(\/assets\/app-[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${h.server.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    // The bundle names no server to load from: the only URLs in it are XML namespace names.
    const urls = new Set((await js.text()).match(/https?:\/\/[\w./-]+/g) ?? []);
    expect([...urls].filter((u) => !u.startsWith('http://www.w3.org/'))).toEqual([]);
    expect((await fetch(`${h.server.url}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${h.server.url}/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
    // GET /graphql from a browser no longer loads Apollo's explorer from a CDN.
    const landing = await fetch(h.graphqlUrl, { headers: { accept: 'text/html' } });
    expect(await landing.text()).not.toMatch(/https?:\/\/[^"]*(apollo|cdn)/i);
  });

  it('refuses a bad key with a clear sign-in error', async () => {
    await signIn('dg_not-a-real-key-000000000000000000');
    await hasText(page.getByRole('alert'), 'not accepted');
    await expectAccessible();
    // The label check itself sees an unlabelled control.
    await page.evaluate(`document.body.insertAdjacentHTML('beforeend', '<input id="probe">')`);
    expect(await unlabelledControls(page)).toEqual(['<input id="probe">']);
    await page.evaluate(`document.getElementById('probe').remove()`);
    // And the contrast check sees light grey on the page's #f6f8fa.
    // (set through the CSSOM: the page's CSP refuses inline style attributes)
    await page.evaluate(
      `const p = document.createElement('p'); p.id = 'probe'; p.textContent = 'faint'; p.style.color = '#aaa'; document.body.append(p)`,
    );
    expect(await lowContrastText(page)).toEqual(['faint (2.18 < 4.5)']);
    await page.evaluate(`document.getElementById('probe').remove()`);
    await b.screenshot('01-sign-in-refused');
  });

  it('admin: creates a customer and shows its key once with a copy button', async () => {
    await signIn(ADMIN_KEY);
    await shows(page.getByRole('heading', { name: 'Customers', exact: true }));
    await page.getByLabel('Name').fill('acme');
    await page.getByLabel('Monthly token limit').fill('1000000');
    await page.getByRole('button', { name: 'Create customer' }).click();
    const secret = page.getByTestId('secret');
    await shows(secret);
    customerKey = (await secret.textContent())!.trim();
    expect(customerKey.length).toBeGreaterThan(20);
    await shows(page.getByRole('button', { name: 'Copy secret' }));
    await shows(page.getByRole('link', { name: 'acme' }).first());
    await expectAccessible();
    await b.screenshot('02-admin-customers');
    await page.getByRole('link', { name: 'acme' }).first().click();
    await shows(page.getByRole('heading', { name: 'API keys', exact: true }));
    await hasText(page.getByTestId('usage'), 'Requests');
    // A second key: created (its secret shown once), then revoked after a confirmation.
    await page.getByLabel('New key name (optional)').fill('second-key');
    await page.getByRole('button', { name: 'Create key' }).click();
    await hasText(page.getByTestId('secret'), 'dg_');
    // The row whose name cell is exactly that (a random key prefix may contain any short text).
    const row = page
      .getByRole('row')
      .filter({ has: page.getByRole('cell', { name: 'second-key', exact: true }) });
    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: /^Revoke key/ }).click();
    await hasText(row, 'revoked');
    await b.screenshot('03-admin-customer');
    await page.getByRole('button', { name: 'Sign out' }).click();
  });

  it('customer: uploads a dataset with a bad line and sees the line error, then a good one', async () => {
    await signIn(customerKey);
    await shows(page.getByRole('heading', { name: 'Datasets', exact: true }));
    await page.getByLabel('JSONL file').setInputFiles({
      name: 'broken.jsonl',
      mimeType: 'application/jsonl',
      buffer: Buffer.from(BAD_DATASET),
    });
    await page.getByLabel(/^Format/).selectOption('PROMPT_COMPLETION');
    await page.getByRole('button', { name: 'Upload' }).click();
    const summary = page.getByTestId('dataset-summary');
    await hasText(summary, 'INVALID');
    const errors = page.getByTestId('dataset-errors');
    await hasExactText(errors.locator('tbody tr').first().locator('td').first(), '2');
    await b.screenshot('04-dataset-line-error');

    await page.getByLabel('Name').fill('');
    await page.getByLabel('JSONL file').setInputFiles({
      name: 'facts.jsonl',
      mimeType: 'application/jsonl',
      buffer: Buffer.from(DATASET),
    });
    await page.getByRole('button', { name: 'Upload' }).click();
    await hasText(summary, 'READY');
    await hasText(summary, '16 rows');
    await hasText(page.locator('table').last(), 'facts');
    await expectAccessible();
    await b.screenshot('05-datasets');
  });

  it('training: starts a job and the loss chart gains points live, through a dropped connection', async () => {
    await page.getByRole('link', { name: 'Training' }).click();
    await shows(page.getByRole('heading', { name: 'Start a training job' }));
    expect(await page.getByLabel('LoRA rank').inputValue()).toBe('8'); // the API's defaults are shown
    await page.getByLabel('New adapter name').fill('support-bot');
    await page.getByLabel('Epochs').fill('5000');
    await shows(page.getByText('Epochs must be in [1, 1000]')); // limits enforced in the form
    expect(await page.getByRole('button', { name: 'Start training' }).isDisabled()).toBe(true);
    await page.getByLabel('Epochs').fill('25');
    await page.getByLabel('Learning rate').fill('0.01');
    await page.getByLabel('Validation dataset').selectOption({ label: 'facts' }); // eval points on the chart
    await expectAccessible();
    await b.screenshot('06-training-form');
    await page.getByRole('button', { name: 'Start training' }).click();

    const chart = page.getByTestId('loss-chart');
    const points = async () => Number(await chart.getAttribute('data-points'));
    await expect.poll(points, { timeout: 60_000 }).toBeGreaterThanOrEqual(3);
    const beforeBlip = await points();
    expect(await page.getByTestId('job-step').textContent()).toMatch(/^\d+ \/ 100$/);

    // A network blip: every connection through the proxy is cut while the job runs.
    expect(proxy.cutAll()).toBeGreaterThan(0);
    await hasExactText(page.getByTestId('connection'), 'live', { timeout: 15_000 });
    await expect.poll(points, { timeout: 60_000 }).toBeGreaterThan(beforeBlip + 2);
    await b.screenshot('07-training-live');

    // Joining a running job (here: reloading its page; the key survives in sessionStorage) shows its history
    // at once, before any live event.
    const beforeReload = await points();
    await page.reload();
    await expect.poll(points, { timeout: 15_000 }).toBeGreaterThanOrEqual(beforeReload);

    await hasText(page.getByRole('heading', { name: /Training job/ }), 'SUCCEEDED', { timeout: 120_000 });
    // No hole where the connection was down: the chart holds every step the server recorded.
    const jobId = decodeURIComponent(page.url().split('#/training/')[1]!);
    const { trainingJob } = await ok(
      h,
      customerKey,
      `query($id: ID!) { trainingJob(id: $id) { lossHistory { step } } }`,
      {
        id: jobId,
      },
    );
    expect(await points()).toBe(trainingJob.lossHistory.length);
    expect(trainingJob.lossHistory).toHaveLength(100);
    await hasText(page.locator('figcaption'), 'latest eval loss'); // eval loss per epoch, on the same chart
    await b.screenshot('08-training-done');
  });

  it('training: cancels a running job from its page', async () => {
    await page.getByRole('link', { name: 'Training' }).click();
    await page.getByLabel('Adapter', { exact: true }).selectOption({ label: 'support-bot (deltagate-tiny)' });
    await page.getByLabel('Epochs').fill('1000');
    await page.getByLabel('When it succeeds').selectOption('NEVER');
    await page.getByRole('button', { name: 'Start training' }).click();
    const chart = page.getByTestId('loss-chart');
    await expect
      .poll(async () => Number(await chart.getAttribute('data-points')), { timeout: 60_000 })
      .toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await hasText(page.getByRole('heading', { name: /Training job/ }), 'CANCELLED', { timeout: 30_000 });
    expect(await page.getByRole('button', { name: 'Cancel job' }).count()).toBe(0);
  });

  it('adapters: promotes a version to production and rolls back in one click', async () => {
    const { adapters } = await ok(h, customerKey, `{ adapters(first: 10) { edges { node { id name } } } }`);
    const adapterId = adapters.edges[0].node.id as string;
    const peft = makePeftAdapter({ seed: 7 });
    await ok(
      h,
      customerKey,
      `mutation($input: ImportAdapterVersionInput!) { importAdapterVersion(input: $input) { version } }`,
      { input: { adapterId, adapterConfig: peft.adapterConfig, weightsBase64: peft.weightsBase64 } },
    );
    await page.getByRole('link', { name: 'Adapters', exact: true }).click();
    await page.getByRole('link', { name: 'support-bot' }).click();
    const production = page.getByTestId('production-version');
    await hasExactText(production, 'version 1'); // IF_BETTER promoted the first trained version
    await hasText(page.getByTestId('version-1'), 'training job');
    await page.getByRole('button', { name: 'Promote version 2 to production' }).click();
    await hasExactText(production, 'version 2');
    await b.screenshot('09-adapter-promoted');
    await page.getByRole('button', { name: 'Roll back production to version 1' }).click();
    await hasExactText(production, 'version 1');
    await expectAccessible();
    await b.screenshot('10-adapter-rolled-back');

    // A version's weights download through its presigned URL, byte for byte.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download version 2' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('adapter_model.safetensors');
    const { adapterVersion } = await ok(
      h,
      customerKey,
      `query($id: ID!) { adapter(id: $id) { latestVersion { sha256 } } }`,
      {
        id: adapterId,
      },
    ).then((d) => ({ adapterVersion: d.adapter.latestVersion }));
    const bytes = readFileSync((await download.path())!);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(adapterVersion.sha256);
  });

  it('adapters: derives a smaller version with its lineage, and exports a merged GGUF', async () => {
    await page.getByRole('link', { name: 'Adapters', exact: true }).click();
    await page.getByRole('link', { name: 'support-bot' }).click();
    await page.getByLabel('Version', { exact: true }).first().selectOption({ label: 'v2 (rank 4)' });
    await page.getByLabel('Rank', { exact: true }).fill('2');
    await page.getByRole('button', { name: 'Shrink' }).click();
    await hasText(page.getByRole('heading', { name: /Shrink job/ }), 'SUCCEEDED', { timeout: 60_000 });
    await b.screenshot('11-derive-job');
    await page.getByRole('link', { name: 'support-bot' }).click();
    await hasText(page.getByTestId('lineage-3'), 'shrink to rank 2 of v2');
    await b.screenshot('12-adapter-lineage');

    await page.getByLabel('Format').selectOption('GGUF');
    await page.getByLabel('Weights', { exact: true }).selectOption('NONE');
    await page.getByRole('button', { name: 'Export' }).click();
    await hasText(page.getByRole('heading', { name: /Export job/ }), 'SUCCEEDED', { timeout: 60_000 });
    const artifact = page.getByTestId('artifact');
    await hasText(artifact, '.gguf');
    await b.screenshot('13-export-job');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      artifact.getByRole('button', { name: /^Download / }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/\.gguf$/);
    const bytes = readFileSync((await download.path())!);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(bytes.readUInt32LE(4)).toBe(3);
  });

  it('playground: streams an answer from the adapter beside the base model', async () => {
    await page.getByRole('link', { name: 'Playground' }).click();
    await page.getByLabel('Adapter reference').fill('support-bot');
    await page.getByLabel('Mode', { exact: true }).selectOption('SIDELOAD');
    await page.getByLabel('Compare with the base model side by side').check();
    await page.getByLabel('Prompt', { exact: true }).fill('Zorbia capital? (0)');
    await page.getByRole('button', { name: 'Generate' }).click();
    await shows(page.getByTestId('output-finish'), { timeout: 60_000 });
    await shows(page.getByTestId('output-base-finish'), { timeout: 60_000 });
    // What streamed in is what the API generates for the same greedy request, adapter and base alike.
    const GENERATE = `mutation($input: GenerateInput!) { generate(input: $input) { text } }`;
    const prompt = 'Zorbia capital? (0)';
    const adapterText = (
      await ok(h, customerKey, GENERATE, {
        input: { adapter: 'support-bot', mode: 'SIDELOAD', prompt, maxTokens: 64 },
      })
    ).generate.text;
    const baseText = (await ok(h, customerKey, GENERATE, { input: { prompt, maxTokens: 64 } })).generate.text;
    expect(await page.getByTestId('output').textContent()).toBe(adapterText);
    expect(await page.getByTestId('output-base').textContent()).toBe(baseText);
    expect(adapterText).not.toBe(baseText);
    await expectAccessible();
    await b.screenshot('14-playground');
  });

  it('playground: a chat keeps its turns', async () => {
    await page.getByLabel('Chat', { exact: true }).check();
    await page.getByLabel('Your message').fill('Hello there');
    await page.getByRole('button', { name: 'Generate' }).click();
    await shows(page.getByTestId('output-finish'), { timeout: 60_000 });
    const turns = page.getByRole('list', { name: 'Conversation' }).locator('li');
    await expect.poll(() => turns.count()).toBe(2);
    await hasText(turns.first(), 'user: Hello there');
    await hasText(turns.last(), 'assistant:');
  });

  it('works from the keyboard alone: the skip link and the navigation', async () => {
    await page.goto(proxy.url + '/#/datasets');
    await page.reload(); // a fresh document: focus starts at its top
    await shows(page.getByRole('heading', { name: 'Datasets', exact: true }));
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab'); // Datasets, Adapters, Training
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Training');
    await page.keyboard.press('Enter');
    await shows(page.getByRole('heading', { name: 'Start a training job' }));
    // The page's own queries are answered before the next test revokes the key (else one of them could be the
    // request that gets UNAUTHENTICATED, signing out before that test acts).
    await shows(page.getByRole('table', { name: /Training jobs/ }));
    await shows(page.getByRole('option', { name: /support-bot/ }).first(), { state: 'attached' });
  });

  it('signs out with a clear message once the key is revoked', async () => {
    const { viewer } = await ok(h, customerKey, `{ viewer { apiKey { id } } }`);
    await ok(h, ADMIN_KEY, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: viewer.apiKey.id });
    await page.getByRole('link', { name: 'Keys & usage' }).click();
    await hasText(page.getByRole('alert'), 'no longer accepted');
    await b.screenshot('15-revoked');
    await signIn(customerKey);
    await hasText(page.getByRole('alert'), 'not accepted');
  });

  it('logged no console error and no uncaught exception on any page', () => {
    // The refused sign-ins answer 401 by design; Chromium logs each failed resource load as an error.
    const unexpected = b.problems.filter((p) => !/status of 401/.test(p));
    expect(unexpected).toEqual([]);
  });
});
