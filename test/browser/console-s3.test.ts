/**
 * The console on S3 storage (PostgreSQL + the suite's S3-protocol server): a dataset uploaded from Chromium
 * goes straight to the bucket through the presigned PUT, cross-origin (the endpoint is another port), with the
 * CORS rule docs/OPERATIONS.md gives on the bucket — and the page's CSP lets the request out to the S3
 * endpoint. (moto and MinIO answer preflights without a rule too; AWS does not, hence the documented rule.)
 */
import { PutBucketCorsCommand, S3Client } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3StorageConfig } from '../../src/config.js';
import { createCustomer } from '../e2e/fixtures/gql-client.js';
import { FACTS_JSONL } from '../e2e/fixtures/facts.js';
import { startHarness, type Harness } from '../e2e/harness.js';
import { openBrowser, type BrowserSession } from './chromium.js';

let h: Harness;
let b: BrowserSession;
let page: Page;
let consoleDir: string;
let key = '';

async function upload(name: string): Promise<void> {
  await page.getByLabel('JSONL file').setInputFiles({
    name: `${name}.jsonl`,
    mimeType: 'application/jsonl',
    buffer: Buffer.from(FACTS_JSONL),
  });
  await page.getByLabel('Name').fill(name);
  await page.getByLabel(/^Format/).selectOption('PROMPT_COMPLETION');
  await page.getByRole('button', { name: 'Upload' }).click();
}

async function putCors(s3: S3StorageConfig, origin: string): Promise<void> {
  const client = new S3Client({
    endpoint: s3.endpoint!,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId!, secretAccessKey: s3.secretAccessKey! },
  });
  // The rule docs/OPERATIONS.md ("The web console") tells operators to put on an AWS bucket.
  await client.send(
    new PutBucketCorsCommand({
      Bucket: s3.bucket,
      CORSConfiguration: {
        CORSRules: [
          {
            AllowedOrigins: [origin],
            AllowedMethods: ['PUT', 'GET', 'HEAD'],
            AllowedHeaders: ['content-type', 'content-length', 'x-amz-checksum-sha256'],
            ExposeHeaders: ['etag'],
            MaxAgeSeconds: 600,
          },
        ],
      },
    }),
  );
  client.destroy();
}

beforeAll(async () => {
  consoleDir = mkdtempSync(join(tmpdir(), 'dg-console-s3-'));
  execFileSync(process.execPath, ['console/build.mjs', '--out', consoleDir], { stdio: 'pipe' });
  h = await startHarness('postgres+s3', { DELTAGATE_CONSOLE_DIR: consoleDir });
  key = (await createCustomer(h, 'on-s3')).key;
  b = await openBrowser();
  page = b.page;
  await page.goto(`${h.server.url}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('API key').press('Enter');
  await page.getByRole('heading', { name: 'Datasets', exact: true }).waitFor();
}, 120_000);

afterAll(async () => {
  await b?.close();
  await h?.close();
  rmSync(consoleDir, { recursive: true, force: true });
});

describe('the console on S3 storage', () => {
  it('with the documented CORS rule a dataset goes to the bucket and is validated', async () => {
    const s3 = h.config.storage as S3StorageConfig;
    await putCors(s3, new URL(h.server.url).origin);
    await upload('facts-on-s3');
    const summary = page.getByTestId('dataset-summary');
    await expect
      .poll(async () => (await summary.textContent()) ?? '', { timeout: 15_000 })
      .toContain('READY');
    expect(await summary.textContent()).toContain('4 rows');
    await b.screenshot('20-datasets-on-s3');
    expect(b.problems).toEqual([]);
  });
});
