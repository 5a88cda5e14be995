/**
 * Hash routing (`#/training/<id>`): the server serves one index.html at `/`, so every console page is a
 * fragment — it never reaches the server, and a reload lands on the same page.
 */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** First path segment: 'datasets', 'training', … ('' for the start page). */
  page: string;
  /** The remaining segments, decoded. */
  params: string[];
}

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#\/?/, '');
  const parts = path.split('/').filter((p) => p !== '');
  const decoded = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { page: decoded[0] ?? '', params: decoded.slice(1) };
}

export function href(page: string, ...params: string[]): string {
  return `#/${[page, ...params].map(encodeURIComponent).join('/')}`;
}

export function navigate(page: string, ...params: string[]): void {
  location.hash = href(page, ...params);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
