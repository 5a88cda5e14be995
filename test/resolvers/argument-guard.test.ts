// The GraphQL argument guard (src/resolvers/argument-guard.ts): every ID argument of the schema is classified
// (a new one fails here until it is), ids of the wrong shape are NOT_FOUND, stored strings with a NUL or
// another control character are BAD_USER_INPUT naming the field. End to end: test/e2e/hostile-strings.test.ts.
import type { GraphQLField, GraphQLInputObjectType, GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/db/ids.js';
import {
  FREE_TEXT,
  ID_KINDS,
  LOOKUP_STRINGS,
  checkArguments,
  idArgumentNames,
} from '../../src/resolvers/argument-guard.js';
import { buildDeltagateSchema } from '../../src/resolvers/schema.js';
import { hasForbiddenCharacters, validateText } from '../../src/services/validation.js';

const codeOf = (f: () => void): string => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return 'ok';
};

describe('argument guard', () => {
  it('classifies every ID argument of the schema, and names nothing the schema lacks', async () => {
    const schema = await buildDeltagateSchema();
    const ids = idArgumentNames(schema);
    expect(ids.filter((n) => !(n in ID_KINDS))).toEqual([]);
    expect(Object.keys(ID_KINDS).filter((n) => !ids.includes(n))).toEqual([]);
  });

  it('names only strings the schema has in its exemption lists', async () => {
    const schema = await buildDeltagateSchema();
    const exists = (where: string): boolean => {
      const arg = /^(\w+)\.(\w+)\((\w+)\)$/.exec(where);
      if (arg) {
        const type = schema.getType(arg[1]!) as GraphQLObjectType | undefined;
        return type?.getFields()[arg[2]!]?.args.some((a) => a.name === arg[3]) ?? false;
      }
      const [typeName, fieldName] = where.split('.');
      const type = schema.getType(typeName!) as GraphQLInputObjectType | undefined;
      return type?.getFields()[fieldName!] !== undefined;
    };
    expect([...FREE_TEXT, ...LOOKUP_STRINGS].filter((w) => !exists(w))).toEqual([]);
  });

  it('answers a malformed id NOT_FOUND and a hostile stored string BAD_USER_INPUT', async () => {
    const schema = await buildDeltagateSchema();
    const mutation = schema.getMutationType()!.getFields();
    const query = schema.getQueryType()!.getFields();
    const check = (type: string, field: GraphQLField<unknown, unknown>, args: Record<string, unknown>) =>
      codeOf(() => checkArguments(type, field, args));

    const ds = newId('dataset');
    expect(check('Query', query.dataset!, { id: ds })).toBe('ok');
    expect(check('Query', query.dataset!, { id: 'abc\u0000' })).toBe('NOT_FOUND');
    expect(check('Query', query.dataset!, { id: newId('adapter') })).toBe('NOT_FOUND');
    expect(check('Query', query.dataset!, { id: `${ds}\u0000` })).toBe('NOT_FOUND');
    expect(check('Query', query.adapterByName!, { name: 'a\u0000' })).toBe('NOT_FOUND');

    const start = { adapterId: newId('adapter'), datasetId: ds };
    expect(check('Mutation', mutation.startTraining!, { input: start })).toBe('ok');
    expect(
      check('Mutation', mutation.startTraining!, { input: { ...start, idempotencyKey: 'k\u0000' } }),
    ).toBe('BAD_USER_INPUT');
    expect(
      check('Mutation', mutation.startTraining!, { input: { ...start, validationDatasetId: 'ds_\u0000' } }),
    ).toBe('NOT_FOUND');
    expect(
      check('Mutation', mutation.startTraining!, {
        input: { ...start, hyperparameters: { targetModules: ['q_proj', 'v\u0000'] } },
      }),
    ).toBe('BAD_USER_INPUT');
    // Free text keeps its own rules: a NUL in a prompt, a chat message or dataset content is content.
    expect(
      check('Mutation', mutation.generate!, {
        input: { messages: [{ role: 'user', content: 'a\u0000\u0007' }] },
      }),
    ).toBe('ok');
    expect(check('Mutation', mutation.generate!, { input: { prompt: 'a\u0000b', stop: ['\u0000'] } })).toBe(
      'ok',
    );
    expect(
      check('Mutation', mutation.uploadDataset!, { input: { name: 'n', format: 'TEXT', content: '\u0000' } }),
    ).toBe('ok');
    // Base model ids are the registry's (in memory, BAD_USER_INPUT when unknown).
    expect(check('Mutation', mutation.generate!, { input: { baseModelId: 'x\u0000', prompt: 'p' } })).toBe(
      'ok',
    );
  });

  it('validateText refuses NUL, C0 controls but tab and newlines, DEL and lone surrogates', () => {
    for (const bad of ['a\u0000', '\u0001', 'x\u001b[31m', '\u007f', 'a\ud800b', '\udc00', 'a\ud800'])
      expect([bad, hasForbiddenCharacters(bad)]).toEqual([bad, true]);
    for (const fine of ['', 'plain', 'tab\there', 'lines\r\nand\n', 'emoji 😀', 'é ü 中文', '\u0085'])
      expect([fine, hasForbiddenCharacters(fine)]).toEqual([fine, false]);
    expect(() => validateText('a\u0000', 'description')).toThrow(/description must not contain/);
    expect(codeOf(() => validateText('a\u0000', 'description'))).toBe('BAD_USER_INPUT');
  });
});
