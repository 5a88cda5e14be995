/** For can't-happen conditions: put the offending values in the message. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new Error(`invariant failed: ${typeof message === 'function' ? message() : message}`);
}
