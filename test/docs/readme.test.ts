// README's configuration table is generated from src/config.ts; this fails when someone changes one and not the other.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configTableMarkdown } from '../../src/config.js';

describe('README', () => {
  it('carries the current configuration table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const table = /<!-- config-table:start -->\n([\s\S]*?)<!-- config-table:end -->/.exec(readme)?.[1];
    expect(table).toBe(configTableMarkdown());
  });

  it('names npm test as the test command that .ci/run runs', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
    expect(readme).toMatch(/^npm test\s/m);
    expect(ci.trim().split('\n').at(-1)).toBe('npm test');
  });
});
