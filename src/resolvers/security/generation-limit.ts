/**
 * `generationLimit()`: a ValidationRule allowing at most one generation field (`generate`, `generateStream`)
 * per operation. Aliases would otherwise run many generations for one request — 30 aliased `generate`s made
 * 14,400 tokens while the rate limiter saw one request. Root fields are counted through inline fragments and
 * fragment spreads (each spread counts), with @skip/@include ignored: the verdict is made before variables
 * decide. The token cost of the one generation that remains is charged by ./generation-budget.ts.
 */
import { GraphQLError, Kind, type ASTVisitor, type SelectionSetNode, type ValidationContext } from 'graphql';

export const GENERATION_FIELDS: ReadonlySet<string> = new Set(['generate', 'generateStream']);

export function generationLimit(max = 1) {
  return function GenerationLimitRule(context: ValidationContext): ASTVisitor {
    const count = (set: SelectionSetNode, seen: Set<string>): number => {
      let n = 0;
      for (const sel of set.selections) {
        if (sel.kind === Kind.FIELD) {
          if (GENERATION_FIELDS.has(sel.name.value)) n++;
        } else if (sel.kind === Kind.INLINE_FRAGMENT) {
          n += count(sel.selectionSet, seen);
        } else if (!seen.has(sel.name.value)) {
          const frag = context.getFragment(sel.name.value);
          if (frag) n += count(frag.selectionSet, new Set([...seen, sel.name.value]));
        }
      }
      return n;
    };
    return {
      OperationDefinition(node) {
        if (node.operation === 'query') return;
        const n = count(node.selectionSet, new Set());
        if (n > max) {
          context.reportError(
            new GraphQLError(
              `Operation ${node.name?.value ?? '(anonymous)'} asks for ${n} generations; one generate per request (send the others as their own requests).`,
              { nodes: [node], extensions: { code: 'BAD_USER_INPUT', limit: 'generations', max } },
            ),
          );
        }
      },
    };
  };
}
