// Lint: typescript-eslint's recommended rules plus the layering of STYLE.md
// (http → resolvers → services → {gateway → inference, training, storage, db, queue} → engine; the engine imports none).
import tseslint from 'typescript-eslint';

const layer = (from, forbidden) => ({
  files: [`src/${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((f) => ({
          group: [`**/${f}/*`, `**/${f}`],
          message: `src/${from} must not import src/${f} (dependencies point down)`,
        })),
      },
    ],
  },
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'console/dist/**',
      'node_modules/**',
      'coverage/**',
      '.deltagate/**',
      'bin/**',
      'tmp/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-console': 'error',
    },
  },
  {
    files: ['src/cli.ts', 'src/main.ts', 'src/commands/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  layer('engine', [
    'resolvers',
    'services',
    'db',
    'storage',
    'queue',
    'training',
    'inference',
    'gateway',
    'commands',
    'http',
  ]),
  layer('training', ['resolvers', 'services', 'commands', 'http']),
  layer('inference', ['resolvers', 'services', 'commands', 'http', 'gateway']),
  // The serving runtime: below services (no customers, quotas or SQL), above inference.
  layer('gateway', ['resolvers', 'services', 'commands', 'http', 'db', 'queue', 'training']),
  layer('storage', ['resolvers', 'services', 'engine', 'training', 'inference', 'commands', 'http']),
  layer('db', ['resolvers', 'services', 'engine', 'training', 'inference', 'commands', 'http']),
  layer('queue', ['resolvers', 'services', 'commands', 'http']),
  layer('services', ['resolvers', 'commands', 'http']),
  layer('resolvers', ['commands', 'http']),
  // The HTTP server sits on top of GraphQL: it may import resolvers, services, storage and shared, and
  // reaches SQL, queues, training and the engine only through services the composition root hands it.
  layer('http', ['commands', 'db', 'queue', 'training', 'inference', 'gateway', 'engine']),
);
