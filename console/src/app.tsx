/**
 * The console shell: sign-in, then a navigation bar by role (an admin key manages customers; a customer key
 * works with its own datasets, adapters, training jobs and the playground) and the page the URL fragment names.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, gql, onUnauthenticated, setApiKey } from './api/graphql';
import { storeKey, storedKey } from './api/session';
import {
  connectionState,
  onConnectionState,
  openSubscriptions,
  type ConnectionState,
} from './api/subscriptions';
import { href, useRoute } from './lib/router';
import { AccountPage } from './pages/account';
import { AdaptersPage } from './pages/adapters';
import { CustomersPage } from './pages/customers';
import { DatasetsPage } from './pages/datasets';
import { PlaygroundPage } from './pages/playground';
import { SignInPage } from './pages/sign-in';
import { TrainingPage } from './pages/training';

export interface Viewer {
  role: 'ADMIN' | 'CUSTOMER';
  customer: { id: string; name: string } | null;
  apiKey: { prefix: string } | null;
}

export const VIEWER_QUERY = `query Viewer { viewer { role customer { id name } apiKey { prefix } } }`;

const CUSTOMER_PAGES = [
  ['datasets', 'Datasets'],
  ['adapters', 'Adapters'],
  ['training', 'Training'],
  ['playground', 'Playground'],
  ['account', 'Keys & usage'],
] as const;
const ADMIN_PAGES = [['customers', 'Customers']] as const;

export function App() {
  const [viewer, setViewer] = useState<Viewer | null>(null);
  const [signInError, setSignInError] = useState<string | null>(null);
  const [restoring, setRestoring] = useState(() => storedKey() !== null);

  const signIn = async (key: string): Promise<void> => {
    const trimmed = key.trim();
    try {
      const { viewer: v } = await gql<{ viewer: Viewer }>(VIEWER_QUERY, {}, { key: trimmed });
      storeKey(trimmed);
      setApiKey(trimmed);
      openSubscriptions(trimmed);
      setSignInError(null);
      setViewer(v);
    } catch (err) {
      storeKey(null);
      setSignInError(
        err instanceof ApiError && err.code === 'UNAUTHENTICATED'
          ? 'This API key was not accepted: it is wrong, or it has been revoked.'
          : err instanceof Error
            ? err.message
            : String(err),
      );
    }
  };

  const signOut = (reason: string | null = null) => {
    storeKey(null);
    setApiKey(null);
    openSubscriptions(null);
    setViewer(null);
    setSignInError(reason);
  };

  useEffect(() => {
    const key = storedKey();
    if (key !== null) void signIn(key).finally(() => setRestoring(false));
    return onUnauthenticated(() =>
      signOut('You were signed out: the API key is no longer accepted (revoked?). Sign in with another key.'),
    );
  }, []);

  if (restoring) return <p class="muted">Signing in…</p>;
  if (viewer === null) return <SignInPage onSignIn={signIn} error={signInError} />;
  return <SignedIn viewer={viewer} onSignOut={() => signOut()} />;
}

function SignedIn({ viewer, onSignOut }: { viewer: Viewer; onSignOut(): void }) {
  const route = useRoute();
  const pages = viewer.role === 'ADMIN' ? ADMIN_PAGES : CUSTOMER_PAGES;
  const page = pages.some(([id]) => id === route.page) ? route.page : pages[0][0];
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <span class="brand">deltagate</span>
        <nav aria-label="Console">
          <ul>
            {pages.map(([id, label]) => (
              <li key={id}>
                <a href={href(id)} aria-current={id === page ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          <ConnectionIndicator /> {viewer.role === 'ADMIN' ? 'Admin' : viewer.customer?.name}
          {viewer.apiKey ? ` · key ${viewer.apiKey.prefix}…` : ''}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page page={page} params={route.params} viewer={viewer} />
      </main>
    </>
  );
}

function Page({ page, params, viewer }: { page: string; params: string[]; viewer: Viewer }) {
  switch (page) {
    case 'customers':
      return <CustomersPage customerId={params[0] ?? null} />;
    case 'datasets':
      return <DatasetsPage datasetId={params[0] ?? null} />;
    case 'adapters':
      return <AdaptersPage adapterId={params[0] ?? null} />;
    case 'training':
      return <TrainingPage jobId={params[0] ?? null} />;
    case 'playground':
      return <PlaygroundPage />;
    default:
      return <AccountPage customerId={viewer.customer!.id} />;
  }
}

function ConnectionIndicator() {
  const [state, setState] = useState<ConnectionState>(connectionState());
  useEffect(() => onConnectionState(setState), []);
  if (state === 'idle') return null;
  const text = { connecting: 'connecting…', connected: 'live', reconnecting: 'reconnecting…' }[state];
  return (
    <span class={`live live-${state}`} role="status" aria-live="polite" data-testid="connection">
      {text}
    </span>
  );
}
