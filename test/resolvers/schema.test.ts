// The checked-in SDL must be exactly what the resolvers generate (CI's staleness check: run `npm run schema`
// after changing a resolver), and the PRODUCT.md contract's names must all be present.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { graphql } from '../../src/resolvers/graphql-runtime.js';
import { buildDeltagateSchema, printDeltagateSchema } from '../../src/resolvers/schema.js';

const fieldsOf = (type: unknown) =>
  Object.keys((type as { getFields(): Record<string, unknown> }).getFields()).sort();

describe('schema/schema.graphql', () => {
  it('is up to date with the resolvers (run `npm run schema` if this fails)', async () => {
    const checkedIn = await readFile(new URL('../../schema/schema.graphql', import.meta.url), 'utf8');
    expect(checkedIn).toBe(await printDeltagateSchema());
  });

  it('has every name of the contract that issue 2 covers', async () => {
    const schema = await buildDeltagateSchema();
    expect(fieldsOf(schema.getQueryType())).toEqual(
      expect.arrayContaining([
        'viewer',
        'customers',
        'customer',
        'baseModels',
        'dataset',
        'datasets',
        'adapter',
        'adapterByName',
        'adapters',
        'adapterVersion',
        'trainingJob',
        'trainingJobs',
      ]),
    );
    expect(fieldsOf(schema.getMutationType())).toEqual(
      expect.arrayContaining([
        'createCustomer',
        'createApiKey',
        'revokeApiKey',
        'uploadDataset',
        'createDatasetUpload',
        'completeDatasetUpload',
        'deleteDataset',
        'createAdapter',
        'importAdapterVersion',
        'setAdapterAlias',
        'deleteAdapterVersion',
      ]),
    );
    expect(fieldsOf(schema.getType('Dataset'))).toEqual(
      expect.arrayContaining([
        'id',
        'name',
        'format',
        'status',
        'rowCount',
        'tokenCount',
        'sizeBytes',
        'sha256',
        'errors',
        'createdAt',
      ]),
    );
    expect(fieldsOf(schema.getType('Adapter'))).toEqual(
      expect.arrayContaining(['id', 'name', 'baseModel', 'versions', 'aliases', 'latestVersion']),
    );
    expect(fieldsOf(schema.getType('AdapterVersion'))).toEqual(
      expect.arrayContaining([
        'version',
        'rank',
        'alpha',
        'targetModules',
        'sizeBytes',
        'sha256',
        'metrics',
        'trainingJob',
        'dataset',
        'downloadUrl',
      ]),
    );
    expect(fieldsOf(schema.getType('BaseModel'))).toEqual(
      expect.arrayContaining([
        'id',
        'name',
        'architecture',
        'parameterCount',
        'contextLength',
        'quantization',
        'config',
      ]),
    );
    expect(fieldsOf(schema.getType('TrainingJob'))).toEqual(
      expect.arrayContaining(['status', 'progress', 'lossHistory', 'error', 'resultVersion', 'createdAt']),
    );
    const enumValues = (name: string) =>
      (schema.getType(name) as InstanceType<typeof graphql.GraphQLEnumType>).getValues().map((v) => v.name);
    expect(enumValues('DatasetFormat')).toEqual(['PROMPT_COMPLETION', 'CHAT', 'TEXT']);
    expect(enumValues('DatasetStatus')).toEqual(['PENDING', 'VALIDATING', 'READY', 'INVALID']);
    expect(enumValues('TrainingJobStatus')).toEqual([
      'QUEUED',
      'RUNNING',
      'SUCCEEDED',
      'FAILED',
      'CANCELLED',
    ]);
    for (const input of [
      'CreateCustomerInput',
      'UploadDatasetInput',
      'CreateDatasetUploadInput',
      'CreateAdapterInput',
      'ImportAdapterVersionInput',
      'SetAdapterAliasInput',
    ]) {
      expect(schema.getType(input), input).toBeDefined();
    }
  });
});
