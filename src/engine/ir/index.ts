/**
 * The graph IR's public surface: types and the closed op set, the builder (`Graph`), shape rules, and the
 * composite layers. Serialization lives in ../onnx/emit.ts; execution in ../onnx/session.ts.
 */
export * from './types.js';
export * from './graph.js';
export * from './ops.js';
export * from './composites.js';
