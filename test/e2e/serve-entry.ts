// Runs the real CLI (`deltagate <command>`) from the TypeScript sources, for tests that need a separate
// process (signals, exit codes); `bin/deltagate.js` does the same from dist/.
import 'reflect-metadata';
import { main } from '../../src/cli.js';

await main(process.argv.slice(2));
