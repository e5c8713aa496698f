// The results report over training runs (`peft report`).
export { writeReport, type ReportOptions, type ReportResult, type ResultsFile } from './report.js';
export { readRun, readRunLog } from './read-run.js';
export { toRow, toRows, classMean } from './rows.js';
export { resultsMarkdown, TABLE_COLUMNS, tableCells } from './format.js';
export { REPORT_MARKER } from './output-dir.js';
export { sampleIndices, type GalleryGroup, type GalleryOptions, type GalleryRun, type GallerySection } from './gallery.js';
export { DisplayNames, datasetName, type DisplaySource } from './names.js';
export type { ResultRow, RunInfo, RunRecord, RunSummary, StepPoint, ValPoint } from './types.js';
