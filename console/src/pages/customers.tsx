/** Admin: every customer with this month's usage; create a customer (its first key shown once); one customer's keys. */
import { useState } from 'preact/hooks';
import { gql } from '../api/graphql';
import { ErrorNote, Loading, Pager, SecretOnce, Section } from '../components/common';
import { formatDate, formatNumber } from '../lib/format';
import { href } from '../lib/router';
import { useQuery } from '../lib/use-query';
import { CustomerDetail } from './customer-detail';

const CUSTOMERS = `query Customers($after: String) {
  customers(first: 100, after: $after) {
    edges { node { id name createdAt monthlyTokenLimit usage { period requests promptTokens completionTokens } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface CustomerRow {
  id: string;
  name: string;
  createdAt: string;
  monthlyTokenLimit: number | null;
  usage: { period: string; requests: number; promptTokens: number; completionTokens: number };
}
interface CustomersData {
  customers: { edges: { node: CustomerRow }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

export function CustomersPage({ customerId }: { customerId: string | null }) {
  if (customerId !== null)
    return (
      <>
        <p>
          <a href={href('customers')}>← All customers</a>
        </p>
        <CustomerDetail customerId={customerId} />
      </>
    );
  return <CustomerList />;
}

function CustomerList() {
  const [after, setAfter] = useState<string | null>(null);
  const { data, error, loading, reload } = useQuery<CustomersData>(CUSTOMERS, { after });
  const [created, setCreated] = useState<{ id: string; name: string; secret: string } | null>(null);
  const [form, setForm] = useState({
    name: '',
    monthlyTokenLimit: '',
    maxAdapters: '',
    maxConcurrentJobs: '',
  });
  const [formError, setFormError] = useState<unknown>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setFormError(null);
    const optionalInt = (v: string) => (v.trim() === '' ? undefined : Number(v));
    try {
      const r = await gql<{ createCustomer: { customer: { id: string; name: string }; secret: string } }>(
        `mutation CreateCustomer($input: CreateCustomerInput!) { createCustomer(input: $input) { customer { id name } secret } }`,
        {
          input: {
            name: form.name.trim(),
            monthlyTokenLimit: optionalInt(form.monthlyTokenLimit),
            maxAdapters: optionalInt(form.maxAdapters),
            maxConcurrentJobs: optionalInt(form.maxConcurrentJobs),
          },
        },
      );
      setCreated({ ...r.createCustomer.customer, secret: r.createCustomer.secret });
      setForm({ name: '', monthlyTokenLimit: '', maxAdapters: '', maxConcurrentJobs: '' });
      await reload();
    } catch (err) {
      setFormError(err);
    }
  };
  const field = (key: keyof typeof form) => ({
    value: form[key],
    onInput: (e: Event) => setForm({ ...form, [key]: (e.target as HTMLInputElement).value }),
  });
  const rows = data?.customers.edges.map((e) => e.node) ?? [];
  return (
    <>
      <h1>Customers</h1>
      <Section title="New customer">
        {created && (
          <>
            <p>
              Created <a href={href('customers', created.id)}>{created.name}</a>.
            </p>
            <SecretOnce secret={created.secret} what={`First API key of ${created.name}`} />
          </>
        )}
        <form class="grid-form" onSubmit={create}>
          <label for="customer-name">Name</label>
          <input id="customer-name" required maxLength={200} {...field('name')} />
          <label for="customer-tokens">Monthly token limit</label>
          <input
            id="customer-tokens"
            type="number"
            min={0}
            step={1}
            placeholder="unlimited"
            {...field('monthlyTokenLimit')}
          />
          <label for="customer-adapters">Max adapters</label>
          <input
            id="customer-adapters"
            type="number"
            min={1}
            step={1}
            placeholder="default"
            {...field('maxAdapters')}
          />
          <label for="customer-jobs">Max concurrent jobs</label>
          <input
            id="customer-jobs"
            type="number"
            min={1}
            step={1}
            placeholder="default"
            {...field('maxConcurrentJobs')}
          />
          <ErrorNote error={formError} />
          <button type="submit" class="primary">
            Create customer
          </button>
        </form>
      </Section>
      <Section title="All customers">
        {loading && !data && <Loading what="customers" />}
        <ErrorNote error={error} />
        <table>
          <caption class="sr-only">Customers and their usage this month</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Requests</th>
              <th scope="col">Tokens this month</th>
              <th scope="col">Limit</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id}>
                <td>
                  <a href={href('customers', c.id)}>{c.name}</a>
                </td>
                <td>{formatDate(c.createdAt)}</td>
                <td>{formatNumber(c.usage.requests)}</td>
                <td>{formatNumber(c.usage.promptTokens + c.usage.completionTokens)}</td>
                <td>{c.monthlyTokenLimit == null ? 'unlimited' : formatNumber(c.monthlyTokenLimit)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <Pager after={after} pageInfo={data?.customers.pageInfo} onPage={setAfter} />
      </Section>
    </>
  );
}
