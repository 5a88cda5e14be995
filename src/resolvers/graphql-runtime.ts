/**
 * The one `graphql` module instance that Apollo, type-graphql and graphql-ws use, for the few places we
 * construct graphql classes or call its functions on their schema. graphql 16 ships CJS (index.js) and ESM
 * (index.mjs) without an exports map: Node loads index.js for every importer, but Vite/vitest resolve our
 * sources' `import 'graphql'` to index.mjs, and `instanceof GraphQLError` / `GraphQLScalarType` checks then
 * fail across the two copies. Loading it with `require` gives index.js in both runtimes. Types may still
 * be imported from 'graphql' as usual.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const graphql = require('graphql') as typeof import('graphql');
