export * from './fixture.js';
export * from './parity-kind.js';
export * from './compare.js';
export * from './run-parity.js';
export * from './grads.js';
export * from './layer-fixture.js';
export * from './load-params.js';
