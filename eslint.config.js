// Lint: typescript-eslint's recommended rules plus the layering of STYLE.md
// (resolvers → services → {training, inference, storage, db, queue} → engine; the engine imports none of them).
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
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.deltagate/**', 'bin/**'] },
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
  layer('engine', ['resolvers', 'services', 'db', 'storage', 'queue', 'training', 'inference', 'commands']),
  layer('training', ['resolvers', 'services', 'commands']),
  layer('inference', ['resolvers', 'services', 'commands']),
  layer('storage', ['resolvers', 'services', 'engine', 'training', 'inference', 'commands']),
  layer('db', ['resolvers', 'services', 'engine', 'training', 'inference', 'commands']),
  layer('queue', ['resolvers', 'services', 'commands']),
  layer('services', ['resolvers', 'commands']),
);
