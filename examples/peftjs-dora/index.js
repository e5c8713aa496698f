// peftjs-dora: DoRA as an external method plugin for peftjs. The host calls
// `register(registry, peftjs)`: `registry` is the host's registry and
// `peftjs` the host's public API, so this package uses the host's tfjs, zod
// and Module classes and needs no build step and no copy of its own.
import { createDora } from './dora.js';
import { createDoraHfPeft } from './hf-peft.js';

/**
 * @param {import('peftjs').Registry} registry
 * @param {typeof import('peftjs')} [peftjs] the host's public API
 */
export async function register(registry, peftjs) {
  // an older host may not pass its API: fall back to the installed peftjs
  const api = peftjs ?? (await import('peftjs'));
  registry.registerMethod(createDora(api).doraMethod);
}

export { createDora, createDoraHfPeft };
