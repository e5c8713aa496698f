export * from './plugin-spec.js';
export * from './linked-plugins.js';
export * from './validate-definitions.js';
export * from './load-plugins.js';
export * from './link.js';
export * from './require-plugins.js';
