// A small least-recently-used map bounded by entry count and by a byte budget,
// calling `onEvict` for every entry it drops (the embedding cache disposes its
// tensors there). Map keeps insertion order, so re-inserting on use makes the
// first key the least recently used one.

export interface LruOptions<V> {
  /** Most entries kept (>= 1). */
  maxEntries: number;
  /** Most bytes kept, as `sizeOf` counts them (default: unbounded). An entry larger than this alone is still kept, alone. */
  maxBytes?: number;
  sizeOf?: (value: V) => number;
  onEvict?: (key: string, value: V) => void;
}

export class Lru<V> {
  private readonly map = new Map<string, { value: V; bytes: number }>();
  private total = 0;

  constructor(private readonly options: LruOptions<V>) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) throw new RangeError(`Lru: maxEntries must be a positive integer, got ${options.maxEntries}`);
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** The value, marked as most recently used. */
  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  /** Stores `value` under `key` (evicting the previous value of the key and then the least recently used entries over the bounds). */
  set(key: string, value: V): void {
    this.delete(key);
    const bytes = this.options.sizeOf?.(value) ?? 0;
    this.map.set(key, { value, bytes });
    this.total += bytes;
    const maxBytes = this.options.maxBytes ?? Infinity;
    for (const [k, e] of this.map) {
      if (this.map.size <= this.options.maxEntries && this.total <= maxBytes) break;
      if (k === key) continue; // the newest entry stays even when it alone exceeds the byte budget
      this.drop(k, e);
    }
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.drop(key, e);
    return true;
  }

  /** Drops every entry whose key satisfies `pred`. */
  deleteWhere(pred: (key: string) => boolean): void {
    for (const [k, e] of [...this.map]) if (pred(k)) this.drop(k, e);
  }

  clear(): void {
    for (const [k, e] of [...this.map]) this.drop(k, e);
  }

  private drop(key: string, e: { value: V; bytes: number }): void {
    this.map.delete(key);
    this.total -= e.bytes;
    this.options.onEvict?.(key, e.value);
  }
}
