// Target patterns shared by methods: a role (`attn.qkv`), a role with groups
// (`attn.qkv[q,v]`), a role glob (`mlp.*`), or a path regex (`/blocks\.[0-3]\./`).
// Targets come from flags, run.json and adapter files: the regex and the glob
// are compiled by the linear-time engine of core/patterns.ts, never by RegExp.
import { PeftError } from '../errors.js';
import { compileUntrustedPattern } from '../patterns.js';
import { briefValue, quoteName } from '../text.js';
import type { InjectionSite, LinearSite } from './injection-site.js';

export interface TargetPattern {
  source: string;
  /** Matches a site's role or path. */
  test(site: InjectionSite): boolean;
  /** Groups named in brackets, if any (`attn.qkv[q,v]` → ['q','v']). */
  groups?: string[];
}

/** Parses one target; `owner` (the method, or the file and key it was read from) names it in errors. */
export function parseTarget(source: string, owner = 'targets'): TargetPattern {
  if (typeof source !== 'string') throw new PeftError(`${owner}: a target must be a string, got ${briefValue(source)}`);
  const text = source.trim();
  if (text.length >= 2 && text.startsWith('/') && text.lastIndexOf('/') > 0) {
    const end = text.lastIndexOf('/');
    const re = compileUntrustedPattern(text.slice(1, end), `${owner}: target ${quoteName(source)}`, { flags: text.slice(end + 1) });
    return { source, test: (s) => re.test(s.path) };
  }
  const m = /^([A-Za-z0-9_.*-]+)(?:\[([A-Za-z0-9_, ]*)\])?$/.exec(text);
  if (!m) throw new PeftError(`${owner}: target ${quoteName(source)}: expected a role like 'attn.qkv', 'attn.qkv[q,v]', 'mlp.*', or a /regex/ over paths`);
  // consecutive stars are one star: '**********x' is 'mlp.*' as far as matching goes
  const glob = compileUntrustedPattern(`^${m[1]!.replace(/\*+/g, '*').replace(/[.]/g, '\\.').replace(/\*/g, '(?s:.*)')}$`, `${owner}: target ${quoteName(source)}`);
  const groups = m[2] !== undefined ? m[2].split(',').map((g) => g.trim()).filter(Boolean) : undefined;
  if (groups && groups.length === 0) throw new PeftError(`${owner}: target ${quoteName(source)}: empty group list`);
  return { source, groups, test: (s) => glob.test(s.role) };
}

export interface LinearSelection {
  site: LinearSite;
  /** Which output groups to adapt (undefined = the whole layer). */
  groups?: boolean[];
}

/**
 * Selects linear sites for a list of targets. Every target must match at least
 * one site; group names must exist on the matched site.
 */
export function selectLinearSites(sites: InjectionSite[], targets: string[], owner: string): LinearSelection[] {
  if (targets.length === 0) throw new PeftError(`${owner}: no targets given`);
  if (!Array.isArray(targets)) throw new PeftError(`${owner}: targets must be a list of strings, got ${typeof targets}`);
  const patterns = targets.map((t) => parseTarget(t, owner));
  const chosen = new Map<string, LinearSelection>();
  for (const pattern of patterns) {
    const hits = sites.filter((s): s is LinearSite => s.kind === 'linear' && pattern.test(s));
    if (hits.length === 0) {
      const roles = [...new Set(sites.filter((s) => s.kind === 'linear').map((s) => s.role))].join(', ');
      throw new PeftError(`${owner}: target ${quoteName(pattern.source)} matches no site (roles here: ${roles})`);
    }
    for (const site of hits) {
      let groups: boolean[] | undefined;
      if (pattern.groups) {
        if (!site.groups) throw new PeftError(`${owner}: target ${quoteName(pattern.source)}: '${site.role}' has no groups`);
        for (const g of pattern.groups) {
          if (!site.groups.includes(g)) {
            throw new PeftError(`${owner}: target ${quoteName(pattern.source)}: '${site.role}' has groups ${site.groups.join(',')}, not ${quoteName(g)}`);
          }
        }
        groups = site.groups.map((g) => pattern.groups!.includes(g));
      }
      const prev = chosen.get(site.path);
      if (prev && (prev.groups === undefined || groups === undefined)) chosen.set(site.path, { site });
      else if (prev) chosen.set(site.path, { site, groups: prev.groups!.map((on, i) => on || groups![i]!) });
      else chosen.set(site.path, { site, groups });
    }
  }
  return [...chosen.values()];
}
