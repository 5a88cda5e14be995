/**
 * `costLimit(max, { defaultListSize })`: a ValidationRule that estimates an operation's cost from the schema
 * before execution and refuses it past `max`. Each field costs 1; a field with `first`/`last` multiplies its
 * subtree by that number (a Relay connection: its `edges`/`nodes` lists are not multiplied again); any other
 * list field multiplies by `defaultListSize`. Variables count as their default, else `maxPageSize`
 * (resolvers refuse larger pages, see `page-size.ts`). Introspection (`__*`) is free.
 */
import {
  GraphQLError,
  Kind,
  getNamedType,
  getNullableType,
  isCompositeType,
  isListType,
  isObjectType,
  isInterfaceType,
  valueFromASTUntyped,
  type ASTVisitor,
  type GraphQLCompositeType,
  type GraphQLNamedType,
  type FieldNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import { maxPageSize } from './page-size.js';

export interface CostOptions {
  /** Multiplier for list fields without `first`/`last`. */
  defaultListSize: number;
}

const PAGE_ARGS = ['first', 'last'];

export function costLimit(max: number, options: CostOptions = { defaultListSize: 10 }) {
  const { defaultListSize } = options;
  return function CostLimitRule(context: ValidationContext): ASTVisitor {
    const schema = context.getSchema();
    let variables = new Map<string, unknown>();

    const pageSize = (field: FieldNode): number | null => {
      for (const arg of field.arguments ?? []) {
        if (!PAGE_ARGS.includes(arg.name.value)) continue;
        const v =
          arg.value.kind === Kind.VARIABLE
            ? (variables.get(arg.value.name.value) ?? maxPageSize)
            : valueFromASTUntyped(arg.value);
        if (typeof v === 'number' && Number.isFinite(v)) return Math.max(0, v);
        if (v === null || v === undefined) continue;
        return maxPageSize;
      }
      return null;
    };

    const fieldsOf = (type: GraphQLNamedType | undefined) =>
      type && (isObjectType(type) || isInterfaceType(type)) ? type.getFields() : undefined;

    const fragmentCost = new Map<string, number>();
    const inProgress = new Set<string>();

    /** Cost of a selection set on `parent`; `sized`: the parent field was paginated, so lists here are pages. */
    const costOf = (
      set: SelectionSetNode | undefined,
      parent: GraphQLCompositeType | undefined,
      sized: boolean,
    ): number => {
      if (set === undefined) return 0;
      let total = 0;
      for (const sel of set.selections) {
        if (sel.kind === Kind.FIELD) {
          if (sel.name.value.startsWith('__')) continue;
          const def = fieldsOf(parent)?.[sel.name.value];
          const page = pageSize(sel);
          const nullable = def ? getNullableType(def.type) : undefined;
          const child = def ? getNamedType(def.type) : undefined;
          const childCost = costOf(
            sel.selectionSet,
            child && isCompositeType(child) ? child : undefined,
            page !== null,
          );
          let multiplier = 1;
          if (page !== null) multiplier = page;
          else if (nullable !== undefined && isListType(nullable) && !sized) multiplier = defaultListSize;
          total += 1 + multiplier * childCost;
        } else if (sel.kind === Kind.INLINE_FRAGMENT) {
          const cond = sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : parent;
          total += costOf(sel.selectionSet, cond && isCompositeType(cond) ? cond : undefined, sized);
        } else {
          const name = sel.name.value;
          const memo = `${name}:${sized}`;
          const known = fragmentCost.get(memo);
          if (known !== undefined) total += known;
          else if (!inProgress.has(name)) {
            const frag = context.getFragment(name);
            if (!frag) continue;
            const cond = schema.getType(frag.typeCondition.name.value);
            inProgress.add(name);
            const c = costOf(frag.selectionSet, cond && isCompositeType(cond) ? cond : undefined, sized);
            inProgress.delete(name);
            fragmentCost.set(memo, c);
            total += c;
          }
        }
        // Stop early on bombs: the verdict is already known.
        if (total > max) return total;
      }
      return total;
    };

    const rootType = (op: OperationDefinitionNode) =>
      op.operation === 'query'
        ? schema.getQueryType()
        : op.operation === 'mutation'
          ? schema.getMutationType()
          : schema.getSubscriptionType();

    return {
      OperationDefinition(node) {
        variables = new Map();
        for (const v of node.variableDefinitions ?? []) {
          if (v.defaultValue) variables.set(v.variable.name.value, valueFromASTUntyped(v.defaultValue));
        }
        const cost = costOf(node.selectionSet, rootType(node) ?? undefined, false);
        if (cost > max) {
          context.reportError(
            new GraphQLError(
              `Operation ${node.name?.value ?? '(anonymous)'} costs more than ${max} (estimated ${cost > 1e15 ? 'over 1e15' : Math.round(cost)}).`,
              { nodes: [node], extensions: { code: 'BAD_USER_INPUT', limit: 'cost', max } },
            ),
          );
        }
      },
    };
  };
}
