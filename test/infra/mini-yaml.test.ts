/**
 * The subset YAML reader used by the compose test: what it reads, and that it refuses what it does not.
 */
import { describe, expect, it } from 'vitest';
import { parseYaml } from './mini-yaml.js';

describe('parseYaml', () => {
  it('reads maps, sequences, flow lists, quotes and comments', () => {
    const doc = [
      '# comment',
      'a: 1',
      'b:',
      '  c: "x # not a comment"',
      '  d: [\'p\', q, "r"]  # trailing',
      '  e:',
      '    - one',
      "    - 'it''s'",
      '  f: {}',
      'g:',
      '- k: v',
      '  l: w',
      '- plain',
      'h:',
      "  ['wrapped', 'flow',",
      "   'list']",
    ].join('\n');
    expect(parseYaml(doc)).toEqual({
      a: '1',
      b: { c: 'x # not a comment', d: ['p', 'q', 'r'], e: ['one', "it's"], f: {} },
      g: [{ k: 'v', l: 'w' }, 'plain'],
      h: ['wrapped', 'flow', 'list'],
    });
  });

  it.each([
    ['anchors', 'a: &x 1'],
    ['aliases', 'a: *x'],
    ['block scalars', 'a: |\n  text'],
    ['merge keys', 'a:\n  <<: {}'],
    ['duplicate keys', 'a: 1\na: 2'],
    ['tabs', 'a:\n\tb: 1'],
    ['bad indentation', 'a: 1\n   b: 2'],
  ])('refuses %s', (_what, doc) => {
    expect(() => parseYaml(doc)).toThrow(/line \d+/);
  });
});
