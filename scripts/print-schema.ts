/**
 * `npm run schema`: writes the GraphQL SDL generated from the resolvers to schema/schema.graphql (the
 * checked-in contract file). `--check` only compares and exits 1 when the file is stale (what CI and
 * test/resolvers/schema.test.ts enforce). The schema itself is built in src/resolvers/schema.ts.
 */
import 'reflect-metadata';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printDeltagateSchema } from '../src/resolvers/schema.js';

const SCHEMA_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'schema.graphql');

async function main(): Promise<number> {
  const sdl = await printDeltagateSchema();
  if (process.argv.includes('--check')) {
    const current = await readFile(SCHEMA_FILE, 'utf8').catch(() => '');
    if (current === sdl) return 0;
    process.stderr.write('schema/schema.graphql is stale: run `npm run schema` and commit the result\n');
    return 1;
  }
  await writeFile(SCHEMA_FILE, sdl);
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
  return 0;
}

process.exitCode = await main();
