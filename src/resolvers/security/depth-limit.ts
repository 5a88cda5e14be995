/**
 * `depthLimit(max)`: a graphql-js ValidationRule refusing operations nested deeper than `max` field levels,
 * before execution. Fragments are followed (memoized, cycle-safe: cycles are NoFragmentCycles' to report);
 * introspection subtrees (`__schema`, `__type`) are not counted. Alias and cost limits are siblings in this
 * folder; `index.ts` bundles them for the server (`src/http/graphql.ts`).
 */
import { GraphQLError, Kind, type SelectionSetNode, type ValidationContext, type ASTVisitor } from 'graphql';

export function depthLimit(max: number) {
  return function DepthLimitRule(context: ValidationContext): ASTVisitor {
    const fragmentDepth = new Map<string, number>();
    const inProgress = new Set<string>();

    /** Levels of fields below and including this selection set. */
    const depthOf = (set: SelectionSetNode | undefined): number => {
      if (set === undefined) return 0;
      let deepest = 0;
      for (const sel of set.selections) {
        let d = 0;
        if (sel.kind === Kind.FIELD) {
          if (sel.name.value.startsWith('__')) continue;
          d = 1 + depthOf(sel.selectionSet);
        } else if (sel.kind === Kind.INLINE_FRAGMENT) {
          d = depthOf(sel.selectionSet);
        } else {
          const name = sel.name.value;
          const known = fragmentDepth.get(name);
          if (known !== undefined) d = known;
          else if (!inProgress.has(name)) {
            const frag = context.getFragment(name);
            inProgress.add(name);
            d = frag ? depthOf(frag.selectionSet) : 0;
            inProgress.delete(name);
            fragmentDepth.set(name, d);
          }
        }
        if (d > deepest) deepest = d;
        // Stop early: a bomb may be huge, and the answer is already known.
        if (deepest > max) return deepest;
      }
      return deepest;
    };

    return {
      OperationDefinition(node) {
        if (depthOf(node.selectionSet) > max) {
          context.reportError(
            new GraphQLError(
              `Operation ${node.name?.value ?? '(anonymous)'} is nested more than ${max} levels deep (the limit).`,
              { nodes: [node], extensions: { code: 'BAD_USER_INPUT', limit: 'depth', max } },
            ),
          );
        }
      },
    };
  };
}
