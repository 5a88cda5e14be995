/**
 * The signed-in API key. Kept in sessionStorage (one tab, gone when the tab closes), never in a URL or
 * localStorage; the role is what `viewer` answered at sign-in.
 */
const KEY = 'deltagate.apiKey';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: the user signs in again on reload
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key === null) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, key);
  } catch {
    // storage disabled: the key lives only in memory for this page
  }
}
