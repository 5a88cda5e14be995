/**
 * GraphQL enums of the contract (PRODUCT.md), registered once. The values are the strings the repositories
 * store, so no mapping is needed between SQL and GraphQL.
 */
import { registerEnumType } from 'type-graphql';

export const Role = { ADMIN: 'ADMIN', CUSTOMER: 'CUSTOMER' } as const;
export const DatasetFormatEnum = {
  PROMPT_COMPLETION: 'PROMPT_COMPLETION',
  CHAT: 'CHAT',
  TEXT: 'TEXT',
} as const;
export const DatasetStatusEnum = {
  PENDING: 'PENDING',
  VALIDATING: 'VALIDATING',
  READY: 'READY',
  INVALID: 'INVALID',
} as const;
export const TrainingJobStatusEnum = {
  QUEUED: 'QUEUED',
  RUNNING: 'RUNNING',
  SUCCEEDED: 'SUCCEEDED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
} as const;

export const JobKindEnum = {
  TRAINING: 'TRAINING',
  SHRINK: 'SHRINK',
  MERGE: 'MERGE',
  EXPORT: 'EXPORT',
} as const;

registerEnumType(JobKindEnum, {
  name: 'JobKind',
  description:
    'What a job does: TRAINING (startTraining), SHRINK / MERGE (deriveAdapterVersion) or EXPORT (exportAdapterVersion).',
});
registerEnumType(Role, { name: 'Role', description: 'Who the API key belongs to.' });
registerEnumType(DatasetFormatEnum, {
  name: 'DatasetFormat',
  description: '{"prompt","completion"} | {"messages":[{role,content}]} | {"text"} per JSONL line.',
});
registerEnumType(DatasetStatusEnum, { name: 'DatasetStatus' });
registerEnumType(TrainingJobStatusEnum, { name: 'TrainingJobStatus' });
