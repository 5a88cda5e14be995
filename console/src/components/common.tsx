/** Small building blocks every page uses: error and status notes, a copy button, a progress bar. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { describeError } from '../api/graphql';

export function ErrorNote({ error }: { error: unknown }) {
  if (error == null) return null;
  return (
    <p class="note error" role="alert">
      {describeError(error)}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Section({
  title,
  children,
  actions,
}: {
  title: string;
  children: ComponentChildren;
  actions?: ComponentChildren;
}) {
  return (
    <section class="card" aria-label={title}>
      <header class="card-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** Copies `text` to the clipboard; says so for screen readers too. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState('copied');
    } catch {
      setState('failed');
    }
  };
  return (
    <>
      <button type="button" onClick={copy}>
        {label}
      </button>
      <span class="muted" role="status" aria-live="polite">
        {state === 'copied'
          ? ' Copied.'
          : state === 'failed'
            ? ' Copy failed: select the text and copy it.'
            : ''}
      </span>
    </>
  );
}

/** A secret shown exactly once, with a copy button and a warning. */
export function SecretOnce({ secret, what }: { secret: string; what: string }) {
  return (
    <div class="note secret" role="status">
      <p>
        <strong>{what}</strong> — shown once, never again. Store it now.
      </p>
      <code class="secret-value" data-testid="secret">
        {secret}
      </code>{' '}
      <CopyButton text={secret} label="Copy secret" />
    </div>
  );
}

export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const pct = max > 0 ? Math.min(100, Math.round((value / max) * 100)) : 0;
  return (
    <div class="progress-row">
      <progress value={value} max={max > 0 ? max : 1} aria-label={label} />
      <span class="muted">{pct}%</span>
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status.toLowerCase()}`}>{status}</span>;
}

/** First / next page buttons of a GraphQL connection; `after` null is the first page. */
export function Pager({
  after,
  pageInfo,
  onPage,
}: {
  after: string | null;
  pageInfo: { hasNextPage: boolean; endCursor: string | null } | undefined;
  onPage(after: string | null): void;
}) {
  return (
    <div class="pager">
      {after !== null && (
        <button type="button" onClick={() => onPage(null)}>
          First page
        </button>
      )}
      {pageInfo?.hasNextPage && (
        <button type="button" onClick={() => onPage(pageInfo.endCursor)}>
          Next page
        </button>
      )}
    </div>
  );
}
