/** One customer: limits, this month's usage, API keys (create: the secret shown once; revoke). */
import { useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { ErrorNote, Loading, SecretOnce, Section } from '../components/common';
import { formatDate, formatNumber } from '../lib/format';
import { useQuery } from '../lib/use-query';

const CUSTOMER = `query Customer($id: ID!) {
  customer(id: $id) {
    id name createdAt maxAdapters maxConcurrentJobs monthlyTokenLimit
    usage { period requests promptTokens completionTokens }
    apiKeys { id name prefix createdAt lastUsedAt revokedAt }
  }
}`;

interface ApiKeyRow {
  id: string;
  name: string | null;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface CustomerData {
  customer: {
    id: string;
    name: string;
    createdAt: string;
    maxAdapters: number;
    maxConcurrentJobs: number;
    monthlyTokenLimit: number | null;
    usage: { period: string; requests: number; promptTokens: number; completionTokens: number };
    apiKeys: ApiKeyRow[];
  } | null;
}

export function CustomerDetail({ customerId }: { customerId: string }) {
  const { data, error, loading, reload } = useQuery<CustomerData>(CUSTOMER, { id: customerId });
  const [secret, setSecret] = useState<string | null>(null);
  const [keyName, setKeyName] = useState('');
  const [actionError, setActionError] = useState<unknown>(null);

  if (loading && !data) return <Loading what="customer" />;
  if (error && !data) return <ErrorNote error={error} />;
  const c = data?.customer;
  if (!c) return <p class="note">No such customer.</p>;

  const createKey = async (e: Event) => {
    e.preventDefault();
    setActionError(null);
    try {
      const r = await gql<{ createApiKey: { secret: string } }>(
        `mutation CreateKey($customerId: ID!, $name: String) { createApiKey(customerId: $customerId, name: $name) { secret apiKey { id } } }`,
        { customerId: c.id, name: keyName.trim() === '' ? null : keyName.trim() },
      );
      setSecret(r.createApiKey.secret);
      setKeyName('');
      await reload();
    } catch (err) {
      setActionError(err);
    }
  };
  const revoke = async (key: ApiKeyRow) => {
    if (!confirm(`Revoke key ${key.prefix}…? Requests with it fail at once.`)) return;
    setActionError(null);
    try {
      await gql(`mutation Revoke($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`, { id: key.id });
      await reload();
    } catch (err) {
      setActionError(err);
    }
  };
  const total = c.usage.promptTokens + c.usage.completionTokens;
  return (
    <>
      <Section title={`Customer ${c.name}`}>
        <dl class="facts">
          <dt>Id</dt>
          <dd>
            <code>{c.id}</code>
          </dd>
          <dt>Created</dt>
          <dd>{formatDate(c.createdAt)}</dd>
          <dt>Adapters allowed</dt>
          <dd>{c.maxAdapters}</dd>
          <dt>Concurrent training jobs</dt>
          <dd>{c.maxConcurrentJobs}</dd>
          <dt>Monthly token limit</dt>
          <dd>{c.monthlyTokenLimit == null ? 'unlimited' : formatNumber(c.monthlyTokenLimit)}</dd>
        </dl>
      </Section>
      <Section title={`Usage in ${c.usage.period} (UTC)`}>
        <dl class="facts" data-testid="usage">
          <dt>Requests</dt>
          <dd>{formatNumber(c.usage.requests)}</dd>
          <dt>Prompt tokens</dt>
          <dd>{formatNumber(c.usage.promptTokens)}</dd>
          <dt>Completion tokens</dt>
          <dd>{formatNumber(c.usage.completionTokens)}</dd>
          <dt>Total tokens</dt>
          <dd>
            {formatNumber(total)}
            {c.monthlyTokenLimit != null && c.monthlyTokenLimit > 0
              ? ` (${((total / c.monthlyTokenLimit) * 100).toFixed(1)}% of the limit)`
              : ''}
          </dd>
        </dl>
      </Section>
      <Section title="API keys">
        {secret && <SecretOnce secret={secret} what="New API key" />}
        <ErrorNote error={actionError} />
        <table>
          <caption class="sr-only">API keys of {c.name}</caption>
          <thead>
            <tr>
              <th scope="col">Prefix</th>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {c.apiKeys.map((k) => (
              <tr key={k.id}>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{k.name ?? '—'}</td>
                <td>{formatDate(k.createdAt)}</td>
                <td>{formatDate(k.lastUsedAt)}</td>
                <td>{k.revokedAt ? `revoked ${formatDate(k.revokedAt)}` : 'active'}</td>
                <td>
                  {!k.revokedAt && (
                    <button
                      type="button"
                      class="danger"
                      onClick={() => revoke(k)}
                      aria-label={`Revoke key ${k.prefix}`}
                    >
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form class="inline-form" onSubmit={createKey}>
          <label for="key-name">New key name (optional)</label>
          <input
            id="key-name"
            maxLength={200}
            value={keyName}
            onInput={(e) => setKeyName((e.target as HTMLInputElement).value)}
          />
          <button type="submit">Create key</button>
        </form>
      </Section>
    </>
  );
}
