// The public API of peftjs. Plugins (built-in and external) import only this:
// the values in ./api.js, plus the plugin contract's types, completed in
// ./plugin-api.js (`PeftjsApi` is `typeof` the values, which api.ts holds so
// that this file, which names the contract, is not part of what it names).
import 'reflect-metadata';

export * from './api.js';
export type { PeftjsApi, RegisterFunction } from './plugin-api.js';
export * from './core/registry/method-config.js';
