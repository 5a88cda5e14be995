/**
 * GraphQL shapes of derived versions and exports: the deriveAdapterVersion / exportAdapterVersion inputs,
 * a version's lineage (AdapterVersionParent, AdapterDerivation) and an EXPORT job's artifact. Shapes only:
 * the rules are src/services/derived-jobs.ts, the resolvers ../derived-version-resolver.ts.
 */
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DateTimeScalar, JSONScalar, SafeIntScalar } from '../scalars.js';
import { PromotePolicyEnum } from './training-job.js';

export const DeriveOperationEnum = { SHRINK: 'SHRINK', MERGE: 'MERGE' } as const;
registerEnumType(DeriveOperationEnum, {
  name: 'DeriveOperation',
  description:
    'SHRINK: one version at a lower rank. MERGE: several versions into one (PEFT add_weighted_adapter).',
});

export const MergeMethodEnum = { LINEAR: 'LINEAR', CAT: 'CAT', SVD: 'SVD' } as const;
registerEnumType(MergeMethodEnum, {
  name: 'MergeMethod',
  description: "PEFT's add_weighted_adapter combination types (docs/ADAPTERS.md).",
  valuesConfig: {
    LINEAR: { description: 'Weighted sum of the factors (equal ranks); B·A includes cross terms.' },
    CAT: { description: 'Factors side by side: exactly Σ wᵢ·sᵢ·Bᵢ·Aᵢ at rank Σ rᵢ.' },
    SVD: { description: 'The best rank-`rank` approximation of Σ wᵢ·sᵢ·Bᵢ·Aᵢ.' },
  },
});

export const ExportFormatEnum = { GGUF: 'GGUF', HF: 'HF' } as const;
registerEnumType(ExportFormatEnum, {
  name: 'ExportFormat',
  description:
    'GGUF: one file for llama.cpp / Ollama. HF: a Hugging Face directory (F32 safetensors) as one .tar.',
});

export const ExportQuantizationEnum = { NONE: 'NONE', F16: 'F16', Q8_0: 'Q8_0', Q4_0: 'Q4_0' } as const;
registerEnumType(ExportQuantizationEnum, {
  name: 'ExportQuantization',
  description: 'GGUF weight encoding (NONE = F32; norms stay F32). HF exports are always NONE.',
});

@InputType('DeriveSourceInput')
export class DeriveSourceInput {
  @Field(() => ID)
  versionId!: string;

  @Field(() => Float, {
    nullable: true,
    description: "Multiplies this version's s·B·A in a MERGE (default 1; may be negative). SHRINK: 1.",
  })
  weight?: number | null;
}

@InputType('DeriveAdapterVersionInput')
export class DeriveAdapterVersionInput {
  @Field(() => ID, {
    description: 'The adapter that gets the new version (same base model as every source).',
  })
  adapterId!: string;

  @Field(() => DeriveOperationEnum)
  operation!: keyof typeof DeriveOperationEnum;

  @Field(() => [DeriveSourceInput], {
    description: 'SHRINK: exactly one. MERGE: two or more, in order (recorded as the parents).',
  })
  sources!: DeriveSourceInput[];

  @Field(() => MergeMethodEnum, { nullable: true, description: 'MERGE only (required there).' })
  method?: keyof typeof MergeMethodEnum | null;

  @Field(() => Int, {
    nullable: true,
    description:
      'SHRINK: every module at min(rank, its rank); below the source rank. MERGE SVD: the result rank (default the largest source rank).',
  })
  rank?: number | null;

  @Field(() => Float, {
    nullable: true,
    description:
      'SHRINK only, instead of rank: per module the smallest rank keeping this fraction (0, 1] of ‖s·B·A‖².',
  })
  energy?: number | null;

  @Field(() => String, {
    nullable: true,
    description: 'The same key (per customer) and input answer the same job; a different input is CONFLICT.',
  })
  idempotencyKey?: string | null;

  @Field(() => PromotePolicyEnum, {
    nullable: true,
    description: 'What success does with the `production` alias (default NEVER for derived versions).',
  })
  promote?: keyof typeof PromotePolicyEnum | null;
}

@InputType('ExportAdapterVersionInput')
export class ExportAdapterVersionInput {
  @Field(() => ID)
  versionId!: string;

  @Field(() => ExportFormatEnum)
  format!: keyof typeof ExportFormatEnum;

  @Field(() => ExportQuantizationEnum, { nullable: true, description: 'GGUF only (default NONE: F32).' })
  quantize?: keyof typeof ExportQuantizationEnum | null;

  @Field(() => String, {
    nullable: true,
    description: 'The same key (per customer) and input answer the same job; a different input is CONFLICT.',
  })
  idempotencyKey?: string | null;
}

@ObjectType('AdapterVersionParent', { description: 'One source of a derived version, in order.' })
export class AdapterVersionParentType {
  @Field(() => ID, { description: 'Kept after the parent version is deleted.' })
  versionId!: string;

  @Field(() => Float)
  weight!: number;
}

@ObjectType('AdapterDerivation', { description: 'How a derived version was made (deriveAdapterVersion).' })
export class AdapterDerivationType {
  @Field(() => DeriveOperationEnum)
  operation!: keyof typeof DeriveOperationEnum;

  @Field(() => MergeMethodEnum, { nullable: true })
  method!: keyof typeof MergeMethodEnum | null;

  @Field(() => Int, { nullable: true, description: 'The rank asked for (null: energy, or the default).' })
  rank!: number | null;

  @Field(() => Float, { nullable: true, description: 'The energy asked for (SHRINK).' })
  energy!: number | null;

  @Field(() => JSONScalar, {
    description:
      'What the engine reported: the result rank, per module its rank and kept / dropped energy and relative Frobenius error (SHRINK, MERGE SVD), totals, durationSeconds.',
  })
  report!: Record<string, unknown>;
}

@ObjectType('JobArtifact', {
  description: "An EXPORT job's file, kept until expiresAt or its version's deletion.",
})
export class JobArtifactType {
  @Field(() => String, {
    description: 'A name to save it as, e.g. support-v3-q8_0.gguf or support-v3-hf.tar.',
  })
  fileName!: string;

  @Field(() => ExportFormatEnum)
  format!: keyof typeof ExportFormatEnum;

  @Field(() => ExportQuantizationEnum)
  quantize!: keyof typeof ExportQuantizationEnum;

  @Field(() => SafeIntScalar)
  sizeBytes!: number;

  @Field(() => String, { description: 'SHA-256 (hex) of the stored file.' })
  sha256!: string;

  @Field(() => DateTimeScalar)
  createdAt!: string;

  @Field(() => DateTimeScalar, { description: 'When it is deleted.' })
  expiresAt!: string;
}
