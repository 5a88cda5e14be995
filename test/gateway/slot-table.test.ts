// The side-load slot table: the whole table after each activate / release / pin / evict.
import { describe, expect, it } from 'vitest';
import { SlotTable } from '../../src/gateway/slot-table.js';
import { LoraColumns } from '../../src/inference/lora-columns.js';
import { randomAdapter, randomCheckpoint } from '../engine/nn/fixtures.js';

describe('SlotTable', () => {
  const { config } = randomCheckpoint();
  const ad = (seed: number) => randomAdapter(config, 2, seed, ['q_proj']);

  it('places, shares, releases, evicts only unreferenced unpinned slots (LRU), and pins', () => {
    const cols = new LoraColumns(config, undefined, 1);
    const t = new SlotTable(cols, 2);
    const steps: unknown[] = [];
    const log = (label: string, result?: unknown) => steps.push({ label, result, table: t.snapshot() });
    log('a', t.activate('a', ad(1)));
    log('b', t.activate('b', ad(2)));
    log('a again', t.activate('a', ad(1)));
    log('c while both in use', t.activate('c', ad(3)));
    t.release('b');
    log('release b');
    log('c evicts b', t.activate('c', ad(3)));
    t.release('c');
    log('pin c', t.pin('c', ad(3)));
    t.release('a');
    t.release('a');
    log('d evicts a, not pinned c', t.activate('d', ad(4)));
    log('e: c pinned, d in use', t.activate('e', ad(5)));
    t.unpin('c');
    log('e after unpin c', t.activate('e', ad(5)));
    expect(steps).toEqual([
      { label: 'a', result: 1, table: [{ versionId: 'a', slot: 1, refs: 1, pinned: false }] },
      {
        label: 'b',
        result: 2,
        table: [
          { versionId: 'a', slot: 1, refs: 1, pinned: false },
          { versionId: 'b', slot: 2, refs: 1, pinned: false },
        ],
      },
      {
        label: 'a again',
        result: 1,
        table: [
          { versionId: 'a', slot: 1, refs: 2, pinned: false },
          { versionId: 'b', slot: 2, refs: 1, pinned: false },
        ],
      },
      {
        label: 'c while both in use',
        result: null,
        table: [
          { versionId: 'a', slot: 1, refs: 2, pinned: false },
          { versionId: 'b', slot: 2, refs: 1, pinned: false },
        ],
      },
      {
        label: 'release b',
        result: undefined,
        table: [
          { versionId: 'a', slot: 1, refs: 2, pinned: false },
          { versionId: 'b', slot: 2, refs: 0, pinned: false },
        ],
      },
      {
        label: 'c evicts b',
        result: 2,
        table: [
          { versionId: 'a', slot: 1, refs: 2, pinned: false },
          { versionId: 'c', slot: 2, refs: 1, pinned: false },
        ],
      },
      {
        label: 'pin c',
        result: true,
        table: [
          { versionId: 'a', slot: 1, refs: 2, pinned: false },
          { versionId: 'c', slot: 2, refs: 0, pinned: true },
        ],
      },
      {
        label: 'd evicts a, not pinned c',
        result: 1,
        table: [
          { versionId: 'd', slot: 1, refs: 1, pinned: false },
          { versionId: 'c', slot: 2, refs: 0, pinned: true },
        ],
      },
      {
        label: 'e: c pinned, d in use',
        result: null,
        table: [
          { versionId: 'd', slot: 1, refs: 1, pinned: false },
          { versionId: 'c', slot: 2, refs: 0, pinned: true },
        ],
      },
      {
        label: 'e after unpin c',
        result: 2,
        table: [
          { versionId: 'd', slot: 1, refs: 1, pinned: false },
          { versionId: 'e', slot: 2, refs: 1, pinned: false },
        ],
      },
    ]);
    expect({ placements: t.placements, evictions: t.evictions }).toEqual({ placements: 5, evictions: 3 });
  });

  it("frees an evicted adapter's columns for the next one", () => {
    const cols = new LoraColumns(config, ['q_proj'], 1);
    const t = new SlotTable(cols, 1);
    t.activate('a', ad(1));
    expect(cols.width('q_proj')).toBe(2);
    t.release('a');
    t.activate('b', randomAdapter(config, 4, 9, ['q_proj']));
    expect(cols.width('q_proj')).toBe(4);
    expect(cols.feeds()['lora.q_proj.col_slot']!.data).toEqual(BigInt64Array.of(1n, 1n, 1n, 1n));
  });
});
