// A restricted unpickler: the subset of the pickle machine (protocols 2 to 5)
// that torch.save emits for a state dict. It never runs code: a GLOBAL is only
// a name handed to `findClass`, which returns an allowed value or refuses;
// REDUCE may only call a `PickleFunction` that `findClass` returned; BUILD is
// accepted only on dicts (OrderedDict's `_metadata` state); every other opcode
// (INST, OBJ, NEWOBJ, EXT*, ...) is rejected by name.
import { PeftError } from '../errors.js';

/** A pickled tuple (JS arrays stand for lists). */
export class PickleTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A pickled dict or OrderedDict. Keys are strings, numbers or other pickled values. */
export class PickleDict extends Map<unknown, unknown> {
  /** The state a BUILD gave it (OrderedDict's attributes, e.g. `_metadata`); ignored. */
  state: unknown;
  constructor(readonly ordered = false) {
    super();
  }
}

/** A callable the unpickler may invoke through REDUCE: only what `findClass` hands out. */
export class PickleFunction {
  constructor(
    readonly name: string,
    readonly call: (args: readonly unknown[]) => unknown,
  ) {}
}

export interface UnpickleHooks {
  /** The value a GLOBAL `module.name` stands for; throws (a PeftError) when it is not allowed. */
  findClass(module: string, name: string): unknown;
  /** The object a persistent id (BINPERSID) refers to. */
  persistentLoad(pid: unknown): unknown;
}

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

const MARK = Symbol('mark');

/** A short description of a pickled value, for error messages. */
export function describePickled(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PickleTuple) return `tuple of ${v.items.length}`;
  if (v instanceof PickleDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof PickleFunction) return v.name;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

/**
 * Runs the pickle `data` and returns the value STOP leaves. `source` names the
 * file in errors. Allocations are bounded by `data`'s length (every string or
 * integer must lie inside it).
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks, source: string): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  let opAt = 0;
  let op = 0;

  const fail = (what: string): never => {
    throw new PeftError(`${source}: cannot unpickle: ${what}`);
  };
  const need = (n: number): number => {
    if (n < 0 || pos + n > data.byteLength) fail(`truncated at byte ${pos} (${OPCODE_NAMES[op] ?? 'opcode'} needs ${n} more bytes)`);
    const at = pos;
    pos += n;
    return at;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) {
      fail(`${OPCODE_NAMES[op]} at byte ${opAt} pops an empty stack`);
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) {
      fail(`${OPCODE_NAMES[op]} at byte ${opAt} reads an empty stack`);
    }
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`${OPCODE_NAMES[op]} at byte ${opAt} without a MARK`);
    return stack.splice(m!);
  };
  const text = (at: number, n: number): string => {
    try {
      return utf8.decode(data.subarray(at, at + n));
    } catch {
      return fail(`invalid UTF-8 string at byte ${at}`);
    }
  };
  const line = (): string => {
    const start = pos;
    while (pos < data.byteLength && data[pos] !== 0x0a) pos++;
    if (pos >= data.byteLength) fail(`GLOBAL at byte ${opAt} is not terminated`);
    const s = text(start, pos - start);
    pos++;
    return s;
  };
  const global = (module: string, name: string): unknown => hooks.findClass(module, name);
  const setItems = (dict: unknown, items: unknown[]): void => {
    if (!(dict instanceof PickleDict)) fail(`${OPCODE_NAMES[op]} at byte ${opAt} on a ${describePickled(dict)}, not a dict`);
    if (items.length % 2) fail(`SETITEMS at byte ${opAt} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) (dict as PickleDict).set(items[i], items[i + 1]);
  };
  const append = (list: unknown, items: unknown[]): void => {
    if (!Array.isArray(list)) fail(`${OPCODE_NAMES[op]} at byte ${opAt} on a ${describePickled(list)}, not a list`);
    for (const it of items) (list as unknown[]).push(it);
  };

  for (;;) {
    if (pos >= data.byteLength) fail('ends without STOP (truncated)');
    opAt = pos;
    op = data[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (data[need(1)]! > 5) fail(`protocol ${data[pos - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME: a length prefix only
        need(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP at byte ${opAt} leaves ${stack.length} values and ${marks.length} marks`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(data[need(1)]!);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x8a: {
        // LONG1: n little-endian two's-complement bytes
        const n = data[need(1)]!;
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[at + i]!);
        if (n > 0 && data[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: {
        // BINUNICODE
        const n = view.getUint32(need(4), true);
        stack.push(text(need(n), n));
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        const n = data[need(1)]!;
        stack.push(text(need(n), n));
        break;
      }
      case 0x8d: {
        // BINUNICODE8
        const big = view.getBigUint64(need(8), true);
        if (big > BigInt(data.byteLength)) fail(`string length ${big} at byte ${opAt} exceeds the pickle`);
        const n = Number(big);
        stack.push(text(need(n), n));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PickleTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PickleTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(new PickleTuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(new PickleTuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PickleTuple([a, b, c]));
        break;
      }
      case 0x71: // BINPUT
        memo.set(data[need(1)]!, top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const key = op === 0x68 ? data[need(1)]! : view.getUint32(need(4), true);
        if (!memo.has(key)) fail(`${OPCODE_NAMES[op]} at byte ${opAt} reads memo ${key}, which was never stored`);
        stack.push(memo.get(key));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`STACK_GLOBAL at byte ${opAt} with non-string names`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PickleFunction)) fail(`REDUCE at byte ${opAt} calls a ${describePickled(fn)}, which is not an allowed callable`);
        if (!(args instanceof PickleTuple)) fail(`REDUCE at byte ${opAt} with ${describePickled(args)} arguments`);
        stack.push((fn as PickleFunction).call((args as PickleTuple).items));
        break;
      }
      case 0x62: {
        // BUILD: only a dict's attribute state (OrderedDict._metadata) is accepted, and ignored
        const state = pop();
        const obj = top();
        if (!(obj instanceof PickleDict) || !(state instanceof PickleDict || state === null)) {
          fail(`BUILD at byte ${opAt} on a ${describePickled(obj)} is not allowed`);
        }
        (obj as PickleDict).state = state;
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        fail(
          name
            ? `opcode ${name} (0x${op.toString(16)}) at byte ${opAt} is not allowed in a checkpoint`
            : `unknown opcode 0x${op.toString(16)} at byte ${opAt}`,
        );
      }
    }
  }
}
