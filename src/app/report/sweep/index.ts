// The report of a sweep folder (`peft report SWEEPDIR`): the table over seeds, curves with bands, the paired comparison.
export { writeSweepReport, type SweepReportOptions, type SweepReportResult, type SweepResultsFile } from './report.js';
export { isSweepFolder, readSweep, SWEEP_FILE, type SweepData, type SweepResult } from './read-sweep.js';
export { aggregateSweep, type SweepRow, type SweepCurves, type SeedRun } from './aggregate.js';
export { compareSweep, type PairComparison, type SweepComparison, type UnitWinner } from './compare.js';
export { sweepCells, sweepColumns, sweepMarkdown, seedsText } from './format.js';
export { bandCurve, bandChart, type BandPoint } from './curves.js';
export { mean, sampleStd, seedStat, type SeedStat } from './stats.js';
