/**
 * `deltagate serve` (what `npm start` runs): loads the configuration, starts the API (src/main.ts), prints
 * a generated admin key once, and shuts down gracefully on SIGTERM/SIGINT (in-flight requests finish,
 * WebSockets close, the database pool drains). The training worker is `deltagate worker`.
 */
import { loadConfig, unknownVariables } from '../config.js';
import { startServer } from '../main.js';
import { prettyDestination } from '../log-format.js';
import { createLogger, runUntilSignal } from './command-kit.js';

export const summary = 'run the GraphQL API server (POST and WebSocket /graphql)';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log('usage: deltagate serve\n\nConfigured by DELTAGATE_* environment variables (see README).');
    return 0;
  }
  const config = loadConfig(process.env);
  const logger = createLogger(
    config.logLevel,
    'api',
    config.logFormat === 'pretty' ? prettyDestination() : undefined,
  );
  for (const name of unknownVariables(process.env))
    logger.warn({ variable: name }, 'unknown configuration variable');

  const server = await startServer(config, { logger });
  if (server.adminKey.generated) {
    console.log(
      [
        '',
        'No DELTAGATE_ADMIN_KEY was set, so an admin key was generated (shown this once):',
        '',
        `  ${server.adminKey.key}`,
        '',
        `It is kept in ${server.adminKey.file} (mode 0600). Use it as: Authorization: Bearer <key>`,
        '',
      ].join('\n'),
    );
  } else if (server.adminKey.file !== null) {
    logger.info({ file: server.adminKey.file }, 'admin key loaded from the data directory');
  }
  console.log(`deltagate API ready at ${server.url}/graphql`);

  return runUntilSignal(logger, 'shutting down', () => server.close());
}
