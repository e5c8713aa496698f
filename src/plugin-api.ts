// The plugin contract's types, complete: `PeftjsApi` is declared (empty) in
// the registry, which is part of the API and so cannot name the API's type;
// this file, which nothing in the API imports, completes it by interface
// merging with the type of ./api.js's values. src/index.ts re-exports both
// names from here, so a TypeScript plugin compiled against peftjs sees them
// complete.
import type * as api from './api.js';

type ApiValues = typeof api;

declare module './core/registry/registry.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface PeftjsApi extends ApiValues {}
}

export type { PeftjsApi, RegisterFunction } from './core/registry/registry.js';
