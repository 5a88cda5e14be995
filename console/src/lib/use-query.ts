/**
 * `useQuery(query, variables)`: loads on mount and whenever the variables change, with `reload()` for after a
 * mutation. A newer load supersedes an older one still in flight (its answer is dropped).
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { gql } from '../api/graphql';

export interface QueryState<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload(): Promise<void>;
}

export function useQuery<T>(
  query: string,
  variables: Record<string, unknown> = {},
  skip = false,
): QueryState<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(!skip);
  const generation = useRef(0);
  const varsKey = JSON.stringify(variables);

  const reload = useCallback(async () => {
    if (skip) return;
    const mine = ++generation.current;
    setLoading(true);
    try {
      const result = await gql<T>(query, JSON.parse(varsKey) as Record<string, unknown>);
      if (mine === generation.current) {
        setData(result);
        setError(null);
      }
    } catch (err) {
      if (mine === generation.current) setError(err);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, [query, varsKey, skip]);

  useEffect(() => {
    void reload();
  }, [reload]);

  return { data, error, loading, reload };
}
