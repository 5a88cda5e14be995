/** A customer key's own page: its limits, usage and API keys. */
import { CustomerDetail } from './customer-detail';

export function AccountPage({ customerId }: { customerId: string }) {
  return (
    <>
      <h1>Keys &amp; usage</h1>
      <CustomerDetail customerId={customerId} />
    </>
  );
}
