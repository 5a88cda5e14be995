/**
 * Page sizes for Relay connections: `maxPageSize` is the most one page may hold, and `pageSize(first)` is what
 * every connection resolver calls to turn its `first` argument into a limit (refusing, not silently clamping,
 * anything above `maxPageSize` or negative, so clients notice). Cursor encoding lives with the resolvers.
 */
import { BadInputError } from '../../shared/errors.js';

export const maxPageSize = 100;
export const defaultPageSize = 20;

export class PageSizeError extends BadInputError {
  constructor(first: number) {
    super(`first must be an integer 0-${maxPageSize} (got ${first})`, { details: { max: maxPageSize } });
  }
}

export function pageSize(first: number | null | undefined, fallback: number = defaultPageSize): number {
  if (first === null || first === undefined) return Math.min(fallback, maxPageSize);
  if (!Number.isInteger(first) || first < 0 || first > maxPageSize) throw new PageSizeError(first);
  return first;
}
