export * from './parameter.js';
export * from './module.js';
export * from './layers.js';
export * from './functional.js';
export * from './init.js';
export * from './grad.js';
export * from './containers.js';
export * from './embedding.js';
