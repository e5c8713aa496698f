// Config schemas are zod objects: defaults, types and descriptions in one
// place, validated with messages that name the offending key.
import { z } from 'zod';
import { PeftError } from '../errors.js';

export type ConfigSchema<C = Record<string, unknown>> = z.ZodType<C>;

/** Validates `input` against `schema`; a PeftError naming the first bad key otherwise. */
export function parseConfig<C>(schema: ConfigSchema<C>, input: unknown, owner: string): C {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = issue.path.join('.') || '(config)';
  let detail = issue.message;
  if (issue.code === 'unrecognized_keys') detail = `unknown key(s) ${(issue as { keys: string[] }).keys.join(', ')}`;
  throw new PeftError(`${owner}: invalid config '${key}': ${detail}`);
}

export interface ConfigKeyInfo {
  key: string;
  type: string;
  default?: unknown;
  description?: string;
}

/** The keys of an object schema, for `peft info`. */
export function describeConfig(schema: ConfigSchema<unknown>): ConfigKeyInfo[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, Record<string, unknown>>;
  };
  return Object.entries(json.properties ?? {}).map(([key, p]) => ({
    key,
    type: typeName(p),
    default: p.default,
    description: typeof p.description === 'string' ? p.description : undefined,
  }));
}

function typeName(p: Record<string, unknown>): string {
  if (Array.isArray(p.enum)) return p.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (Array.isArray(p.anyOf)) return (p.anyOf as Record<string, unknown>[]).map(typeName).join(' | ');
  if (p.type === 'array') return `${typeName((p.items as Record<string, unknown>) ?? {})}[]`;
  if (typeof p.type === 'string') return p.type;
  return 'any';
}
