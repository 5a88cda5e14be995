// Admission is a pure plan: round-robin across customers, per-customer caps, free KV and LoRA slots.
import { describe, expect, it } from 'vitest';
import { planAdmission, type AdmissionInput, type WaitingRequest } from '../../src/gateway/admission.js';

const req = (
  id: number,
  customerId: string,
  loraVersion: string | null = null,
  ready = true,
): WaitingRequest => ({
  id,
  customerId,
  loraVersion,
  ready,
});

function input(over: Partial<AdmissionInput>): AdmissionInput {
  return {
    waiting: new Map(),
    freeKvSlots: 8,
    runningByCustomer: new Map(),
    maxRunningPerCustomer: 8,
    placedVersions: new Set(),
    freeLoraSlots: 8,
    lastServed: null,
    ...over,
  };
}

describe('planAdmission', () => {
  it('takes customers in turns, so a burst cannot starve a single request', () => {
    const burst = Array.from({ length: 100 }, (_, i) => req(i + 1, 'A'));
    const plan = planAdmission(
      input({
        waiting: new Map([
          ['A', burst],
          ['B', [req(500, 'B')]],
        ]),
        freeKvSlots: 3,
      }),
    );
    expect(plan).toEqual({ admit: [1, 500, 2], lastServed: 'A' });
    // The turn starts after the customer served last: with one free slot after A, B goes first.
    expect(
      planAdmission(
        input({
          waiting: new Map([
            ['A', burst],
            ['B', [req(500, 'B')]],
          ]),
          freeKvSlots: 1,
          lastServed: 'A',
        }),
      ),
    ).toEqual({ admit: [500], lastServed: 'B' });
  });

  it('respects the per-customer running cap and free KV slots', () => {
    const plan = planAdmission(
      input({
        waiting: new Map([
          ['A', [req(1, 'A'), req(2, 'A'), req(3, 'A')]],
          ['B', [req(4, 'B'), req(5, 'B')]],
        ]),
        runningByCustomer: new Map([['A', 1]]),
        maxRunningPerCustomer: 2,
        freeKvSlots: 4,
      }),
    );
    expect(plan.admit).toEqual([1, 4, 5]);
    expect(planAdmission(input({ waiting: new Map([['A', [req(1, 'A')]]]), freeKvSlots: 0 })).admit).toEqual(
      [],
    );
  });

  it('admits adapters while LoRA slots last; placed ones are free to share; unready ones do not block', () => {
    const plan = planAdmission(
      input({
        waiting: new Map([
          ['A', [req(1, 'A', 'x', false), req(2, 'A', 'v1'), req(3, 'A', 'v2'), req(4, 'A', 'v1')]],
          ['B', [req(5, 'B', 'v3'), req(6, 'B', 'hot')]],
        ]),
        placedVersions: new Set(['hot']),
        freeLoraSlots: 1,
      }),
    );
    // v1 takes the last free slot; v2 and v3 must wait; v1's second request and 'hot' share placed slots.
    expect(plan.admit).toEqual([2, 6, 4]);
  });
});
