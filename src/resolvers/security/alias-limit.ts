/**
 * `aliasLimit(max)`: a ValidationRule against batching attacks — 1,000 aliases of one expensive field, or one
 * root field repeated many times in a document. Counts every aliased field in the document (fragments once
 * each) plus each root field whose response key repeats, and refuses past `max` before execution.
 * Depth and cost limits are siblings in this folder.
 */
import { GraphQLError, Kind, visit, type ASTVisitor, type ValidationContext } from 'graphql';

export function aliasLimit(max: number) {
  return function AliasLimitRule(context: ValidationContext): ASTVisitor {
    return {
      Document: {
        leave(doc) {
          let count = 0;
          visit(doc, {
            Field(node) {
              if (node.alias !== undefined && node.alias.value !== node.name.value) count++;
            },
          });
          // Repeated root fields (`{ viewer viewer viewer }` or the same alias twice) merge in execution, but
          // batching proxies and clients abuse them; count each repeat like an alias.
          for (const def of doc.definitions) {
            if (def.kind !== Kind.OPERATION_DEFINITION) continue;
            const seen = new Set<string>();
            for (const sel of def.selectionSet.selections) {
              if (sel.kind !== Kind.FIELD) continue;
              const key = sel.alias?.value ?? sel.name.value;
              if (seen.has(key)) count++;
              seen.add(key);
            }
          }
          if (count > max) {
            context.reportError(
              new GraphQLError(
                `Document uses ${count} aliases or repeated root fields; the limit is ${max}.`,
                {
                  extensions: { code: 'BAD_USER_INPUT', limit: 'aliases', max },
                },
              ),
            );
          }
        },
      },
    };
  };
}
