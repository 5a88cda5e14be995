// Builds the console into console/dist: one bundled, minified ES module and one stylesheet with content hashes
// in their names (so they can be cached for ever), and index.html pointing at them. Runs at install time
// (`prepare`) and from `npm run build:console`; `--watch` rebuilds on change. Plain JS so it runs before
// anything is compiled. Nothing in dist/ is loaded from a CDN: every byte comes from node_modules.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));

/** Builds into `outDir` (default console/dist) and returns the list of files written, relative to it. */
export async function buildConsole({ outDir = join(root, 'dist'), minify = true } = {}) {
  const assets = join(outDir, 'assets');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(assets, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(root, 'src/main.tsx') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify,
    sourcemap: 'linked',
    outdir: assets,
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => p.slice(p.lastIndexOf('/assets/') + 1));
  const script = outputs.find((p) => p.endsWith('.js'));
  const style = outputs.find((p) => p.endsWith('.css'));
  if (!script || !style)
    throw new Error(`console build produced no script or stylesheet: ${outputs.join(', ')}`);
  const template = await readFile(join(root, 'index.html'), 'utf8');
  const html = template.replace('%SCRIPT%', `/${script}`).replace('%STYLE%', `/${style}`);
  await writeFile(join(outDir, 'index.html'), html);
  const files = ['index.html', ...(await readdir(assets)).map((f) => `assets/${f}`)];
  const digest = createHash('sha256').update(html).digest('hex').slice(0, 12);
  return { outDir, files, digest };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, 'no-minify': { type: 'boolean' } } });
  const { outDir, files } = await buildConsole({ outDir: values.out, minify: !values['no-minify'] });
  process.stdout.write(`console: ${files.length} files in ${outDir}\n`);
}
