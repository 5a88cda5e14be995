/**
 * Playground: an adapter reference and mode, a chat or a raw prompt, sampling settings, and the answer
 * streamed from `generateStream` — optionally beside the base model's answer to the same input.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { describeError } from '../api/graphql';
import { subscribe } from '../api/subscriptions';
import { ErrorNote, Section } from '../components/common';
import { useQuery } from '../lib/use-query';

const ADAPTERS = `query PlaygroundAdapters {
  adapters(first: 100) { edges { node { id name baseModel { id name } aliases { alias } latestVersion { version } } } }
  baseModels { id name }
}`;

interface AdapterChoice {
  id: string;
  name: string;
  baseModel: { id: string; name: string } | null;
  aliases: { alias: string }[];
  latestVersion: { version: number } | null;
}

const STREAM = `subscription Stream($input: GenerateInput!) { generateStream(input: $input) { index text finishReason } }`;

interface Output {
  text: string;
  finishReason: string | null;
  error: string | null;
  running: boolean;
}

const EMPTY: Output = { text: '', finishReason: null, error: null, running: false };

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export function PlaygroundPage() {
  const { data, error } = useQuery<{
    adapters: { edges: { node: AdapterChoice }[] };
    baseModels: { id: string; name: string }[];
  }>(ADAPTERS);
  const adapters = data?.adapters.edges.map((e) => e.node).filter((a) => a.latestVersion !== null) ?? [];
  const [reference, setReference] = useState('');
  const [baseModelId, setBaseModelId] = useState('');
  const [mode, setMode] = useState('AUTO');
  const [kind, setKind] = useState<'chat' | 'prompt'>('prompt');
  const [prompt, setPrompt] = useState('');
  const [system, setSystem] = useState('');
  const [messages, setMessages] = useState<Message[]>([]);
  const [settings, setSettings] = useState({
    maxTokens: '64',
    temperature: '0',
    topP: '',
    topK: '',
    seed: '',
    stop: '',
  });
  const [compare, setCompare] = useState(false);
  const [out, setOut] = useState<Output>(EMPTY);
  const [baseOut, setBaseOut] = useState<Output>(EMPTY);
  const stops = useRef<(() => void)[]>([]);

  useEffect(() => () => stops.current.forEach((s) => s()), []);

  const adapterRef = reference.trim();
  const chosen = adapters.find((a) => adapterRef === a.name || adapterRef.startsWith(`${a.name}@`));
  const base = chosen?.baseModel?.id ?? (baseModelId || data?.baseModels[0]?.id);

  const run = (
    target: 'adapter' | 'base',
    input: Record<string, unknown>,
    set: (f: (o: Output) => Output) => void,
  ) => {
    set(() => ({ ...EMPTY, running: true }));
    const stop = subscribe<{ generateStream: { index: number; text: string; finishReason: string | null } }>(
      STREAM,
      { input: target === 'base' ? { ...input, adapter: null, mode: undefined, baseModelId: base } : input },
      {
        next: ({ generateStream: c }) =>
          set((o) => ({ ...o, text: o.text + c.text, finishReason: c.finishReason ?? o.finishReason })),
        error: (err) => set((o) => ({ ...o, error: describeError(err), running: false })),
        complete: () => set((o) => ({ ...o, running: false })),
      },
    );
    stops.current.push(stop);
  };

  const send = (e: Event) => {
    e.preventDefault();
    stops.current.forEach((s) => s());
    stops.current = [];
    const num = (v: string) => (v.trim() === '' ? undefined : Number(v));
    const stop = settings.stop.split('\n').filter((s) => s !== '');
    const conversation: Message[] =
      kind === 'chat'
        ? [
            ...(system.trim() ? [{ role: 'system' as const, content: system }] : []),
            ...messages,
            { role: 'user' as const, content: prompt },
          ]
        : [];
    const input: Record<string, unknown> = {
      adapter: adapterRef === '' ? null : adapterRef,
      baseModelId: adapterRef === '' ? base : undefined,
      mode: adapterRef === '' ? undefined : mode,
      ...(kind === 'chat' ? { messages: conversation } : { prompt }),
      maxTokens: num(settings.maxTokens),
      temperature: num(settings.temperature),
      topP: num(settings.topP),
      topK: num(settings.topK),
      seed: num(settings.seed),
      stop: stop.length ? stop : undefined,
    };
    run('adapter', input, setOut);
    if (compare && adapterRef !== '') run('base', input, setBaseOut);
    else setBaseOut(EMPTY);
    if (kind === 'chat') setMessages(conversation.filter((m) => m.role !== 'system'));
  };

  // A finished chat answer joins the conversation, so the next turn sees it.
  useEffect(() => {
    if (kind === 'chat' && !out.running && out.finishReason && out.text)
      setMessages((ms) =>
        ms[ms.length - 1]?.role === 'assistant' ? ms : [...ms, { role: 'assistant', content: out.text }],
      );
  }, [out.running, out.finishReason]);

  const setting = (key: keyof typeof settings) => ({
    value: settings[key],
    onInput: (e: Event) => setSettings({ ...settings, [key]: (e.target as HTMLInputElement).value }),
  });
  const running = out.running || baseOut.running;
  return (
    <>
      <h1>Playground</h1>
      <ErrorNote error={error} />
      <form onSubmit={send}>
        <Section title="Model">
          <div class="grid-form">
            <label for="pg-adapter">Adapter reference</label>
            <input
              id="pg-adapter"
              list="pg-adapter-list"
              placeholder="empty: the base model"
              aria-describedby="pg-adapter-help"
              value={reference}
              onInput={(e) => setReference((e.target as HTMLInputElement).value)}
            />
            <datalist id="pg-adapter-list">
              {adapters.flatMap((a) => [
                <option key={a.id} value={a.name} />,
                ...a.aliases.map((al) => (
                  <option key={`${a.id}@${al.alias}`} value={`${a.name}@${al.alias}`} />
                )),
                ...Array.from({ length: a.latestVersion?.version ?? 0 }, (_, i) => (
                  <option key={`${a.id}@v${i + 1}`} value={`${a.name}@v${i + 1}`} />
                )),
              ])}
            </datalist>
            <small id="pg-adapter-help" class="muted">
              "name" serves its production alias (else its latest version); "name@alias", "name@v3" or a
              version id pick one.
            </small>
            {adapterRef === '' && (
              <>
                <label for="pg-base">Base model</label>
                <select
                  id="pg-base"
                  value={base}
                  onChange={(e) => setBaseModelId((e.target as HTMLSelectElement).value)}
                >
                  {data?.baseModels.map((b) => (
                    <option key={b.id} value={b.id}>
                      {b.name}
                    </option>
                  ))}
                </select>
              </>
            )}
            <label for="pg-mode">Mode</label>
            <select
              id="pg-mode"
              value={mode}
              disabled={adapterRef === ''}
              onChange={(e) => setMode((e.target as HTMLSelectElement).value)}
            >
              <option value="AUTO">AUTO — the gateway chooses</option>
              <option value="MERGED">MERGED — W + s·B·A</option>
              <option value="SIDELOAD">SIDELOAD — base weights + per-row adapter</option>
            </select>
            <label class="check">
              <input
                type="checkbox"
                checked={compare}
                disabled={adapterRef === ''}
                onChange={(e) => setCompare((e.target as HTMLInputElement).checked)}
              />{' '}
              Compare with the base model side by side
            </label>
          </div>
        </Section>
        <Section title="Input">
          <fieldset class="segmented">
            <legend>Input kind</legend>
            <label class="check">
              <input
                type="radio"
                name="kind"
                checked={kind === 'prompt'}
                onChange={() => setKind('prompt')}
              />{' '}
              Raw prompt
            </label>
            <label class="check">
              <input type="radio" name="kind" checked={kind === 'chat'} onChange={() => setKind('chat')} />{' '}
              Chat
            </label>
          </fieldset>
          {kind === 'chat' && (
            <>
              <label for="pg-system">System message (optional)</label>
              <textarea
                id="pg-system"
                rows={2}
                value={system}
                onInput={(e) => setSystem((e.target as HTMLTextAreaElement).value)}
              />
              {messages.length > 0 && (
                <ol class="chat" aria-label="Conversation">
                  {messages.map((m, i) => (
                    <li key={i} class={`chat-${m.role}`}>
                      <strong>{m.role}:</strong> {m.content}
                    </li>
                  ))}
                </ol>
              )}
              {messages.length > 0 && (
                <button type="button" onClick={() => setMessages([])}>
                  New conversation
                </button>
              )}
            </>
          )}
          <label for="pg-prompt">{kind === 'chat' ? 'Your message' : 'Prompt'}</label>
          <textarea
            id="pg-prompt"
            rows={4}
            required
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
          />
          <details>
            <summary>Sampling</summary>
            <div class="fields">
              <div class="field">
                <label for="pg-max">Max tokens</label>
                <input id="pg-max" type="number" min={1} step={1} {...setting('maxTokens')} />
              </div>
              <div class="field">
                <label for="pg-temp">Temperature (0: greedy)</label>
                <input id="pg-temp" type="number" min={0} max={2} step="any" {...setting('temperature')} />
              </div>
              <div class="field">
                <label for="pg-topp">Top-p</label>
                <input id="pg-topp" type="number" min={0} max={1} step="any" {...setting('topP')} />
              </div>
              <div class="field">
                <label for="pg-topk">Top-k</label>
                <input id="pg-topk" type="number" min={0} step={1} {...setting('topK')} />
              </div>
              <div class="field">
                <label for="pg-seed">Seed</label>
                <input id="pg-seed" type="number" min={0} step={1} {...setting('seed')} />
              </div>
              <div class="field">
                <label for="pg-stop">Stop sequences (one per line)</label>
                <textarea id="pg-stop" rows={2} {...setting('stop')} />
              </div>
            </div>
          </details>
          <div class="actions">
            <button type="submit" class="primary" disabled={running}>
              {running ? 'Generating…' : 'Generate'}
            </button>
            {running && (
              <button
                type="button"
                onClick={() => {
                  stops.current.forEach((s) => s());
                  stops.current = [];
                  setOut((o) => ({ ...o, running: false }));
                  setBaseOut((o) => ({ ...o, running: false }));
                }}
              >
                Stop
              </button>
            )}
          </div>
        </Section>
      </form>
      <div class={compare && adapterRef !== '' ? 'side-by-side' : ''}>
        <OutputPanel
          title={adapterRef === '' ? 'Base model' : `Adapter ${adapterRef} (${mode})`}
          output={out}
          testId="output"
        />
        {compare && adapterRef !== '' && (
          <OutputPanel title="Base model" output={baseOut} testId="output-base" />
        )}
      </div>
    </>
  );
}

function OutputPanel({ title, output, testId }: { title: string; output: Output; testId: string }) {
  return (
    <Section title={title}>
      <pre class="output" data-testid={testId} aria-live="polite" aria-busy={output.running}>
        {output.text}
      </pre>
      {output.finishReason && (
        <p class="muted" data-testid={`${testId}-finish`}>
          finished: {output.finishReason === 'STOP' ? 'end of text or a stop sequence' : 'max tokens reached'}
        </p>
      )}
      {output.error && (
        <p class="note error" role="alert">
          {output.error}
        </p>
      )}
    </Section>
  );
}
