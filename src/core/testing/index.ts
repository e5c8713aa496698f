export * from './law.js';
export * from './laws.js';
export * from './method-laws.js';
export * from './trainable-set.js';
export * from './config-arbitrary.js';
export * from './plan.js';
export * from './subject.js';
export * from './toy-backbone.js';
