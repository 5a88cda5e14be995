/**
 * The GraphQL-level input guard: before any resolver (or subscription's subscribe) runs, every `ID` and
 * `String` argument — top level or inside input objects and lists — is checked, so hostile strings never
 * reach SQL (PostgreSQL cannot store a NUL: it used to surface as INTERNAL_SERVER_ERROR).
 *
 * - An `ID` of a known kind (`ID_KINDS`) must be shaped like an id of that kind (src/db/ids.ts); anything else
 *   is NOT_FOUND without a query, exactly as an id that does not exist. Base model ids are the registry's
 *   (in memory, BAD_USER_INPUT when unknown). An unclassified `ID` is NOT_FOUND when it holds a control
 *   character; test/resolvers/argument-guard.test.ts fails until a new `ID` argument is classified.
 * - A lookup string (`adapterByName(name)`, `GenerateInput.adapter`) with a control character is NOT_FOUND.
 * - `FREE_TEXT` (dataset content, prompts, chat messages, stop sequences, base64 weights) is content with its
 *   own rules.
 * - Every other string is stored or used as a key: `validateText` (no NUL, no other C0 control but tab and
 *   newlines, no lone surrogate) or BAD_USER_INPUT naming the field. Names and labels have stricter rules in
 *   the services on top.
 *
 * `guardSchemaArguments` wraps the `resolve` and `subscribe` of every field that has arguments, once, when
 * the schema is built (src/resolvers/schema.ts), so a field added later is guarded without opting in.
 */
import type { GraphQLArgument, GraphQLField, GraphQLInputType, GraphQLSchema } from 'graphql';
import { isIdOf, type IdKind } from '../db/ids.js';
import { hasForbiddenCharacters, validateText } from '../services/validation.js';
import { NotFoundError } from '../shared/errors.js';
import { graphql } from './graphql-runtime.js';

const {
  defaultFieldResolver,
  getNamedType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
} = graphql;

/** What an `ID` argument names: an id of src/db/ids.ts, or a base model of the registry. */
export type IdArgumentKind = IdKind | 'baseModel';

/** `Type.field(arg)` for arguments, `InputType.field` for input fields. */
export const ID_KINDS: Readonly<Record<string, IdArgumentKind>> = {
  'Query.adapter(id)': 'adapter',
  'Query.adapterVersion(id)': 'adapterVersion',
  'Query.customer(id)': 'customer',
  'Query.dataset(id)': 'dataset',
  'Query.trainingJob(id)': 'trainingJob',
  'Mutation.cancelTrainingJob(id)': 'trainingJob',
  'Mutation.completeDatasetUpload(id)': 'dataset',
  'Mutation.createApiKey(customerId)': 'customer',
  'Mutation.deleteAdapterVersion(id)': 'adapterVersion',
  'Mutation.deleteDataset(id)': 'dataset',
  'Mutation.revokeApiKey(id)': 'apiKey',
  'Mutation.setAdapterPinned(adapterId)': 'adapter',
  'Subscription.trainingJobProgress(id)': 'trainingJob',
  'CreateAdapterInput.baseModelId': 'baseModel',
  'DeriveAdapterVersionInput.adapterId': 'adapter',
  'DeriveSourceInput.versionId': 'adapterVersion',
  'ExportAdapterVersionInput.versionId': 'adapterVersion',
  'GenerateInput.baseModelId': 'baseModel',
  'ImportAdapterVersionInput.adapterId': 'adapter',
  'ImportAdapterVersionInput.uploadId': 'upload',
  'SetAdapterAliasInput.adapterId': 'adapter',
  'SetAdapterAliasInput.versionId': 'adapterVersion',
  'StartTrainingInput.adapterId': 'adapter',
  'StartTrainingInput.datasetId': 'dataset',
  'StartTrainingInput.validationDatasetId': 'dataset',
};

/** Strings that name something to look up: a control character there cannot match anything. */
export const LOOKUP_STRINGS: ReadonlySet<string> = new Set([
  'Query.adapterByName(name)',
  'GenerateInput.adapter',
]);

/** Content, not names: checked by their own rules (JSONL validation, tokenizer, strict base64), never stored in SQL. */
export const FREE_TEXT: ReadonlySet<string> = new Set([
  'UploadDatasetInput.content',
  'GenerateInput.prompt',
  'GenerateInput.stop',
  'ChatMessageInput.content',
  'ImportAdapterVersionInput.weightsBase64',
]);

const HUMAN_KIND: Record<IdKind, string> = {
  customer: 'customer',
  apiKey: 'API key',
  dataset: 'dataset',
  upload: 'upload',
  adapter: 'adapter',
  adapterVersion: 'adapter version',
  trainingJob: 'training job',
};

/** A hostile value is quoted (JSON escapes) and cut short in messages. */
function shown(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function checkId(where: string, value: string): void {
  const kind = ID_KINDS[where];
  if (kind === 'baseModel') return; // an in-memory registry lookup: unknown → BAD_USER_INPUT there
  if (kind === undefined) {
    if (hasForbiddenCharacters(value)) throw new NotFoundError('object', shown(value));
    return;
  }
  if (!isIdOf(kind, value)) throw new NotFoundError(HUMAN_KIND[kind], shown(value));
}

function checkString(where: string, field: string, value: string): void {
  if (FREE_TEXT.has(where)) return;
  if (LOOKUP_STRINGS.has(where)) {
    if (hasForbiddenCharacters(value)) throw new NotFoundError(field, shown(value));
    return;
  }
  validateText(value, field);
}

/**
 * Checks one value of `type`. `where` names the declaration (for the tables above), `field` the path the
 * client sees in an error (`input.description`).
 */
function checkValue(type: GraphQLInputType, value: unknown, where: string, field: string): void {
  if (value === null || value === undefined) return;
  if (isNonNullType(type)) return checkValue(type.ofType, value, where, field);
  if (isListType(type)) {
    if (Array.isArray(value))
      value.forEach((v, i) => checkValue(type.ofType as GraphQLInputType, v, where, `${field}[${i}]`));
    return;
  }
  if (isInputObjectType(type)) {
    for (const f of Object.values(type.getFields()))
      checkValue(
        f.type,
        (value as Record<string, unknown>)[f.name],
        `${type.name}.${f.name}`,
        `${field}.${f.name}`,
      );
    return;
  }
  if (isScalarType(type) && typeof value === 'string') {
    if (type.name === 'ID') checkId(where, value);
    else if (type.name === 'String') checkString(where, field, value);
  }
}

/** Checks the arguments of one field of `typeName` (throws NOT_FOUND / BAD_USER_INPUT). */
export function checkArguments(
  typeName: string,
  field: { name: string; args: readonly GraphQLArgument[] },
  args: Record<string, unknown>,
): void {
  for (const arg of field.args)
    checkValue(arg.type, args[arg.name], `${typeName}.${field.name}(${arg.name})`, arg.name);
}

/** Every ID and String argument of the schema as `checkValue` names it (for the classification test). */
export function idArgumentNames(schema: GraphQLSchema): string[] {
  const out = new Set<string>();
  const walk = (type: GraphQLInputType, where: string, seen: ReadonlySet<string>) => {
    const named = getNamedType(type);
    if (isScalarType(named) && named.name === 'ID') out.add(where);
    if (isInputObjectType(named) && !seen.has(named.name))
      for (const f of Object.values(named.getFields()))
        walk(f.type, `${named.name}.${f.name}`, new Set([...seen, named.name]));
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const f of Object.values(type.getFields()))
      for (const a of f.args) walk(a.type, `${type.name}.${f.name}(${a.name})`, new Set());
  }
  return [...out].sort();
}

const GUARDED = Symbol('deltagate.argumentGuard');

/** Wraps `resolve` and `subscribe` of every field with arguments in `checkArguments`; idempotent. */
export function guardSchemaArguments(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields()) as (GraphQLField<unknown, unknown> & {
      [GUARDED]?: true;
    })[]) {
      if (field.args.length === 0 || field[GUARDED]) continue;
      const resolve = field.resolve ?? defaultFieldResolver;
      field.resolve = (source, args, context, info) => {
        checkArguments(type.name, field, args);
        return resolve(source, args, context, info);
      };
      const subscribe = field.subscribe;
      if (subscribe !== undefined) {
        field.subscribe = (source, args, context, info) => {
          checkArguments(type.name, field, args);
          return subscribe(source, args, context, info);
        };
      }
      field[GUARDED] = true;
    }
  }
  return schema;
}
