/**
 * `GET /v1/models` and `GET /v1/models/{model}`: what the caller may pass as `model` — every registered base
 * model, and for each of the caller's adapters with at least one version its bare `name` (the `production`
 * alias, else the latest version), `name@alias` per alias and `name@vN` per version. Another tenant's
 * adapters are not listed, and retrieving one is the same 404 as a name nobody has.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CustomerActor } from '../../services/index.js';
import { sendJson } from '../json.js';
import type { RouteContext } from '../router.js';
import { authenticate, refuseBeforeBody, type OpenAIOptions } from './context.js';
import { modelNotFound, sendOpenAIError, toOpenAIError } from './errors.js';

export interface ModelObject {
  id: string;
  object: 'model';
  /** Unix seconds. */
  created: number;
  owned_by: string;
  /** The base model an adapter runs on (null for a base model), as vLLM lists LoRA adapters. */
  parent: string | null;
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);
const PAGE = 100;

async function listModels(o: OpenAIOptions, actor: CustomerActor, started: number): Promise<ModelObject[]> {
  const { adapters } = o.services;
  const out: ModelObject[] = o.services.baseModels.list().map((m) => ({
    id: m.id,
    object: 'model',
    created: started,
    owned_by: 'deltagate',
    parent: null,
  }));
  const all = [];
  for (let after: string | null = null; ;) {
    const page = await adapters.list(actor, PAGE, after);
    all.push(...page.rows);
    if (!page.hasNextPage || page.rows.length === 0) break;
    after = page.rows.at(-1)!.id;
  }
  const ids = all.map((a) => a.id);
  const [versions, aliases] = await Promise.all([
    adapters.versionsOf(actor, ids),
    adapters.aliasesOf(actor, ids),
  ]);
  for (const a of all) {
    const mine = versions.filter((v) => v.adapterId === a.id).sort((x, y) => x.version - y.version);
    if (mine.length === 0) continue; // nothing to serve yet: its name resolves to nothing
    const entry = (id: string, created: string): ModelObject => ({
      id,
      object: 'model',
      created: seconds(created),
      owned_by: actor.customerId,
      parent: a.baseModelId,
    });
    out.push(entry(a.name, a.createdAt));
    const named = aliases.filter((x) => x.adapterId === a.id).sort((x, y) => x.alias.localeCompare(y.alias));
    for (const alias of named) out.push(entry(`${a.name}@${alias.alias}`, alias.updatedAt));
    for (const v of mine) out.push(entry(`${a.name}@v${v.version}`, v.createdAt));
  }
  return out;
}

async function retrieveModel(
  o: OpenAIOptions,
  actor: CustomerActor,
  model: string,
  started: number,
): Promise<ModelObject> {
  const base = o.services.baseModels.get(model);
  if (base !== null)
    return { id: base.id, object: 'model', created: started, owned_by: 'deltagate', parent: null };
  const version = await o.services.adapters.resolveReference(actor, model);
  const adapter = await o.services.adapters.get(actor, version.adapterId);
  return {
    id: model,
    object: 'model',
    created: seconds(version.createdAt),
    owned_by: actor.customerId,
    parent: adapter.baseModelId,
  };
}

export function modelsHandlers(o: OpenAIOptions) {
  const started = Math.floor(Date.now() / 1000);
  return {
    async list(req: IncomingMessage, res: ServerResponse): Promise<void> {
      let actor: CustomerActor;
      try {
        actor = await authenticate(o, req);
      } catch (err) {
        return refuseBeforeBody(req, res, err, o.logger);
      }
      try {
        sendJson(res, 200, { object: 'list', data: await listModels(o, actor, started) });
      } catch (err) {
        sendOpenAIError(res, toOpenAIError(err, o.logger));
      }
    },
    async retrieve(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> {
      let actor: CustomerActor;
      try {
        actor = await authenticate(o, req);
      } catch (err) {
        return refuseBeforeBody(req, res, err, o.logger);
      }
      const model = ctx.params.model ?? '';
      try {
        sendJson(res, 200, await retrieveModel(o, actor, model, started));
      } catch (err) {
        const e = toOpenAIError(err, o.logger, { model });
        sendOpenAIError(res, e.status === 404 ? modelNotFound(model) : e);
      }
    },
  };
}
