// The paired comparison: on each backbone (and grid values), every two
// methods compared seed by seed on the final mean Dice. Seeds pair the runs
// (same data order, same initial prompts), so the difference of a pair is
// less noisy than the difference of the two means. A method wins a pairing
// when it wins more of the paired seeds; the backbone's overall winner is the
// method with the most pairings won.
import type { SweepRow } from './aggregate.js';
import { mean, sampleStd } from './stats.js';

export interface PairComparison {
  /** The backbone (and settings) both methods ran on: "MobileSAM", "MobileSAM, rank=8". */
  unit: string;
  /** The two groups' modes, the winner first when there is one. */
  a: string;
  b: string;
  /** Seeds both finished. */
  seeds: number[];
  winsA: number;
  winsB: number;
  ties: number;
  /** Mean and sample std over the paired seeds of Dice(a) − Dice(b). */
  meanDiff: number | null;
  stdDiff: number | null;
  /** Whether `a` won more paired seeds than `b` (false: a draw, or nothing to compare). */
  aWins: boolean;
  sentence: string;
}

export interface UnitWinner {
  unit: string;
  /** The method with the most pairings won, null on a tie or with nothing compared. */
  winner: string | null;
  /** Pairings won by each method. */
  pairWins: Record<string, number>;
  pairings: number;
  sentence: string;
}

export interface SweepComparison {
  pairs: PairComparison[];
  winners: UnitWinner[];
}

const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`;
const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

function delta(m: number | null, s: number | null): string {
  if (m === null) return '';
  return `Δ Dice ${signed(m)}${s === null ? '' : ` ± ${s.toFixed(4)}`}`;
}

function comparePair(unit: string, x: SweepRow, y: SweepRow): PairComparison {
  const dy = new Map(y.dice.values.map((v) => [v.seed, v.value]));
  const paired = x.dice.values.filter((v) => dy.has(v.seed)).map((v) => ({ seed: v.seed, d: v.value - dy.get(v.seed)! }));
  const wx = paired.filter((p) => p.d > 0).length;
  const wy = paired.filter((p) => p.d < 0).length;
  const flip = wy > wx;
  const [a, b] = flip ? [y, x] : [x, y];
  const diffs = paired.map((p) => (flip ? -p.d : p.d));
  const n = paired.length;
  const winsA = flip ? wy : wx;
  const winsB = flip ? wx : wy;
  const ties = n - winsA - winsB;
  const meanDiff = mean(diffs);
  const stdDiff = sampleStd(diffs);
  const aWins = winsA > winsB;
  const d = delta(meanDiff, stdDiff);
  const tieNote = ties ? ` (${plural(ties, 'tie')})` : '';
  let sentence: string;
  if (n === 0) sentence = `${unit}: ${a.mode} vs ${b.mode}: no seed finished for both yet.`;
  else if (aWins) sentence = `${unit}: ${a.mode} beats ${b.mode} in ${winsA} of ${plural(n, 'seed')}${tieNote}, ${d}.`;
  else sentence = `${unit}: ${a.mode} and ${b.mode} draw, ${winsA}–${winsB} over ${plural(n, 'seed')}${tieNote}, ${d} (${a.mode} − ${b.mode}).`;
  return { unit, a: a.mode, b: b.mode, seeds: paired.map((p) => p.seed), winsA, winsB, ties, meanDiff, stdDiff, aWins, sentence };
}

/** The pairings of every backbone (and grid values) with two or more methods, in table order. */
export function compareSweep(rows: readonly SweepRow[]): SweepComparison {
  const units = new Map<string, SweepRow[]>();
  for (const r of rows) {
    const key = JSON.stringify([r.backboneId, Object.entries(r.values).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))]);
    const members = units.get(key);
    if (members) members.push(r);
    else units.set(key, [r]);
  }
  const pairs: PairComparison[] = [];
  const winners: UnitWinner[] = [];
  for (const members of units.values()) {
    if (members.length < 2) continue;
    const unit = [members[0]!.baseline, members[0]!.settings].filter(Boolean).join(', ');
    const pairWins: Record<string, number> = Object.fromEntries(members.map((m) => [m.mode, 0]));
    let pairings = 0;
    for (let i = 0; i < members.length; i++) {
      for (let j = i + 1; j < members.length; j++) {
        const p = comparePair(unit, members[i]!, members[j]!);
        pairs.push(p);
        if (p.seeds.length) pairings++;
        if (p.aWins) pairWins[p.a] = (pairWins[p.a] ?? 0) + 1;
      }
    }
    const best = Object.values(pairWins).reduce((m, w) => Math.max(m, w), 0);
    const top = Object.keys(pairWins).filter((m) => pairWins[m] === best);
    const winner = best > 0 && top.length === 1 ? top[0]! : null;
    const sentence =
      pairings === 0
        ? `${unit}: no pairing has a seed finished by both methods yet.`
        : winner
          ? `${unit}: overall ${winner} (wins ${best} of ${plural(pairings, 'pairing')}).`
          : `${unit}: no single winner (${Object.entries(pairWins).map(([m, w]) => `${m} ${w}`).join(', ')} of ${plural(pairings, 'pairing')} won).`;
    winners.push({ unit, winner, pairWins, pairings, sentence });
  }
  return { pairs, winners };
}
