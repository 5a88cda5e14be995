/**
 * The `deltagate` command line: a composition root. Each sub-command lives in `src/commands/<name>.ts`
 * and exports `run(argv: string[]): Promise<number>` (the exit code) and a one-line `summary`.
 * Commands are imported lazily so `deltagate generate` does not load the GraphQL server.
 */
const COMMANDS = [
  'serve',
  'worker',
  'make-tiny-model',
  'generate',
  'train',
  'adapter',
  'export',
  'import-gguf',
  'pull',
] as const;
type CommandName = (typeof COMMANDS)[number];

interface CommandModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

function isCommand(name: string | undefined): name is CommandName {
  return (COMMANDS as readonly string[]).includes(name ?? '');
}

async function load(name: CommandName): Promise<CommandModule> {
  return (await import(`./commands/${name}.js`)) as CommandModule;
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!isCommand(name)) {
    const asked = name === undefined || name === '--help' || name === '-h' || name === 'help';
    const lines = asked ? [] : [`deltagate: unknown command: ${name}`];
    lines.push(`usage: deltagate <command> [options]`, '');
    for (const c of COMMANDS) {
      try {
        lines.push(`  ${c.padEnd(16)} ${(await load(c)).summary}`);
      } catch {
        // A command whose module is missing is simply not listed.
      }
    }
    console.error(lines.join('\n'));
    process.exitCode = asked ? 0 : 2;
    return;
  }
  try {
    process.exitCode = await (await load(name)).run(rest);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    console.error(`deltagate ${name}: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}`);
    if (process.env.DELTAGATE_DEBUG) console.error(err);
    process.exitCode = 1;
  }
}
