/** Sign in with an API key (admin or customer). The key goes to sessionStorage, never into the URL. */
import { useState } from 'preact/hooks';

export function SignInPage({
  onSignIn,
  error,
}: {
  onSignIn(key: string): Promise<void>;
  error: string | null;
}) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (key.trim() === '') return;
    setBusy(true);
    try {
      await onSignIn(key);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="sign-in">
      <h1>deltagate console</h1>
      <form onSubmit={submit} class="card">
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          aria-describedby="api-key-help"
        />
        <p id="api-key-help" class="muted">
          An admin key manages customers; a customer key works with its datasets, adapters, training and the
          playground. The key stays in this tab only.
        </p>
        {error && (
          <p class="note error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
