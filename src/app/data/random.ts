// A small seeded PRNG for data generation, augmentation and prompt sampling.
// Deterministic across platforms (pure 32-bit integer arithmetic), never
// Math.random. `Rng.derive(...)` gives independent, reproducible streams
// (e.g. one per sample), so sample i is the same whatever was drawn before it.

/** splitmix32 step: a good 32-bit mixer for seeding. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Hashes seed material (numbers and strings) into a 32-bit key. */
function hashParts(parts: ReadonlyArray<number | string>): number {
  let h = 0x811c9dc5;
  const feed = (v: number) => {
    h = mix32((h ^ v) >>> 0);
  };
  for (const p of parts) {
    if (typeof p === 'number') {
      if (!Number.isFinite(p)) throw new Error(`Rng: seed part must be finite, got ${p}`);
      const v = Math.trunc(p);
      feed(v >>> 0);
      feed(Math.floor(v / 4294967296) >>> 0);
      feed(0x51ed);
    } else {
      for (let i = 0; i < p.length; i++) feed(p.charCodeAt(i));
      feed(0x5715);
    }
  }
  return h;
}

/** sfc32 generator seeded from hashed seed material. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | undefined;
  /** The hashed seed material, kept so `derive` does not depend on the draws made so far. */
  private readonly key: number;

  constructor(...seed: Array<number | string>) {
    this.key = hashParts(seed.length ? seed : [0]);
    this.a = mix32(this.key);
    this.b = mix32(this.a ^ 0x1234567);
    this.c = mix32(this.b ^ 0x89abcdef);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** An independent stream from this generator's seed and the given labels. */
  derive(...labels: Array<number | string>): Rng {
    return new Rng(this.key, 'derive', ...labels);
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new Error(`Rng.int: n must be >= 1, got ${n}`);
    return Math.min(n - 1, Math.floor(this.next() * n));
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box-Muller). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== undefined) {
      const s = this.spareNormal;
      this.spareNormal = undefined;
      return mean + std * s;
    }
    let u = 0;
    while (u <= 1e-12) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** A random element. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}
