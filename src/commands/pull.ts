/**
 * `deltagate pull OWNER/REPO [--revision R] [--out DIR] [--endpoint URL]`: download a Hugging Face model's
 * config, safetensors weights and tokenizer files into DIR (default models/OWNER--REPO), with a progress line
 * on stderr; an interrupted pull resumes where it stopped. HF_TOKEN is sent as a bearer token; HF_ENDPOINT
 * changes the default endpoint. Argument parsing and printing only: the client is src/hub/hf-pull.ts.
 * Exit: 0 downloaded and verified, 1 failed, 2 usage error.
 */
import { join } from 'node:path';
import { DEFAULT_ENDPOINT, isRepoId, pullModel, type PullProgress } from '../hub/hf-pull.js';
import { usageExit } from './command-kit.js';
import { readFlags } from './flags.js';

export const summary = 'download a Hugging Face model (safetensors + tokenizer) with resume and checksums';

const USAGE = `usage: deltagate pull OWNER/REPO [--revision R] [--out DIR] [--endpoint URL]
  --revision   branch, tag or commit (default main)
  --out        directory (default models/OWNER--REPO)
  --endpoint   Hub URL (default $HF_ENDPOINT or ${DEFAULT_ENDPOINT}); HF_TOKEN is sent when set`;

export type ParsedArgs =
  { repo: string; revision: string; out: string; endpoint?: string } | { error: string } | { help: true };

export function parseArgs(argv: string[]): ParsedArgs {
  const f = readFlags(argv, ['--revision', '--out', '--endpoint']);
  if ('help' in f || 'error' in f) return f;
  if (f.positionals.length !== 1) return { error: 'exactly one repository OWNER/REPO is required' };
  const repo = f.positionals[0]!;
  if (!isRepoId(repo)) return { error: `${JSON.stringify(repo)} is not a repository id (OWNER/REPO)` };
  const endpoint = f.values.get('--endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint))
    return { error: `--endpoint needs an http(s) URL, got ${JSON.stringify(endpoint)}` };
  return {
    repo,
    revision: f.values.get('--revision') ?? 'main',
    out: f.values.get('--out') ?? join('models', repo.replace('/', '--')),
    ...(endpoint ? { endpoint } : {}),
  };
}

const mb = (n: number) => (n / 1e6).toFixed(1);

/** One progress line per file, redrawn in place on a terminal; on a pipe only its final state. */
export function progressPrinter(stream: NodeJS.WriteStream): (p: PullProgress) => void {
  const start = new Map<string, { at: number; bytes: number }>();
  return (p) => {
    if (p.event === 'start') start.set(p.file, { at: Date.now(), bytes: p.done });
    const s = start.get(p.file) ?? { at: Date.now(), bytes: 0 };
    const secs = Math.max((Date.now() - s.at) / 1000, 1e-3);
    const rate = `${mb((p.done - s.bytes) / secs)} MB/s`;
    const of =
      p.total === null
        ? `${mb(p.done)} MB`
        : `${mb(p.done)}/${mb(p.total)} MB ${((100 * p.done) / Math.max(p.total, 1)).toFixed(0)}%`;
    let line: string;
    switch (p.event) {
      case 'skipped':
        line = `${p.file}: already here, verified`;
        break;
      case 'verified':
        line = `${p.file}: ${of}, ${rate}, verified`;
        break;
      case 'retry':
        line = `${p.file}: ${of}, connection lost (${p.reason}), resuming`;
        break;
      default:
        line = `${p.file}: ${of}, ${rate}${p.event === 'start' && p.done > 0 ? ' (resumed)' : ''}`;
    }
    const final = p.event === 'skipped' || p.event === 'verified' || p.event === 'retry';
    if (stream.isTTY) stream.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
    else if (final) stream.write(`${line}\n`);
  };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args || 'error' in args) return usageExit('pull', USAGE, args);
  const token = process.env.HF_TOKEN;
  const r = await pullModel({
    repo: args.repo,
    revision: args.revision,
    outDir: args.out,
    endpoint: args.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT,
    ...(token ? { token } : {}),
    onProgress: progressPrinter(process.stderr),
  });
  console.log(`pulled ${args.repo}@${r.commit.slice(0, 12)} into ${r.dir} (${r.files.length} files)`);
  console.log(`serve it: DELTAGATE_BASE_MODELS=${r.dir} npm start`);
  return 0;
}
