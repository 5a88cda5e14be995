/**
 * The one numeric comparison of the suite: fails with the max absolute/relative difference and where it is.
 * |a - e| <= atol + rtol * |e| elementwise.
 */
export interface CloseOptions {
  atol?: number;
  rtol?: number;
  label?: string;
}

type Numeric = ArrayLike<number> | number;

export function maxDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): { abs: number; at: number } {
  let abs = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= abs)) {
      abs = d;
      at = i;
    }
  }
  return { abs, at };
}

export function expectClose(actual: Numeric, expected: Numeric, options: CloseOptions = {}): void {
  const { atol = 1e-5, rtol = 1e-4, label = 'values' } = options;
  const a = typeof actual === 'number' ? [actual] : actual;
  const e = typeof expected === 'number' ? [expected] : expected;
  if (a.length !== e.length) throw new Error(`${label}: length ${a.length} != expected ${e.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < e.length; i++) {
    const tol = atol + rtol * Math.abs(e[i]!);
    const d = Math.abs(a[i]! - e[i]!);
    // NaN compares false, so `!(d <= tol)` also catches NaN on either side.
    if (!(d <= tol) && (worst < 0 || d - tol > worstExcess || Number.isNaN(d))) {
      worst = i;
      worstExcess = d - tol;
    }
  }
  if (worst >= 0) {
    const { abs, at } = maxDiff(a, e);
    throw new Error(
      `${label}: not close (atol ${atol}, rtol ${rtol}); first worst at [${worst}]: ${a[worst]} vs ${e[worst]}; ` +
        `max |diff| ${abs} at [${at}] over ${e.length} values`,
    );
  }
}
