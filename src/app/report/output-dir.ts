// The report's output directory. Nothing the user owns is overwritten: an
// existing directory is written into only when it is empty, holds a previous
// report (its marker file), or the user passed --force. Files a previous
// report wrote and this one does not are removed, and the folders (runs/,
// pictures/...) they leave empty; nothing else is.
import { existsSync, lstatSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { makeDir } from '../../core/io/make-dir.js';

/** The marker a report leaves in its directory: which tool wrote it and the files it wrote. */
export const REPORT_MARKER = '.peft-report.json';

export interface ReportMarker {
  tool: 'peft report';
  version: 1;
  createdAt: string;
  files: string[];
}

/** Readies `out` for writing; returns the files a previous report there wrote. */
export function prepareOutputDir(out: string, force: boolean): string[] {
  if (!existsSync(out)) {
    try {
      makeDir(out);
    } catch (err) {
      throw new PeftError(`${out}: cannot create the report folder (${errorReason(err)})`);
    }
    return [];
  }
  if (!statSync(out).isDirectory()) throw new PeftError(`${out}: exists and is not a directory; choose another --out`);
  const markerFile = join(out, REPORT_MARKER);
  if (existsSync(markerFile)) {
    try {
      const m = JSON.parse(readFileSync(markerFile, 'utf8')) as Partial<ReportMarker>;
      return Array.isArray(m.files) ? m.files.filter((f): f is string => typeof f === 'string') : [];
    } catch {
      return [];
    }
  }
  if (readdirSync(out).length === 0 || force) return [];
  throw new PeftError(`${out}: directory exists and holds no previous report (${REPORT_MARKER}); choose another --out, or pass --force to write the report files into it`);
}

/** A path a marker may name: relative, inside the directory. */
function isInside(file: string): boolean {
  const n = normalize(file);
  return !isAbsolute(n) && !n.startsWith('..') && n !== '.' && n !== REPORT_MARKER;
}

/** Whether `rel` inside `out` is reached without a symbolic link (a link may lead to the user's own files). */
function noLinks(out: string, rel: string): boolean {
  let p = out;
  for (const part of normalize(rel).split(/[\\/]/)) {
    p = join(p, part);
    if (!existsSync(p) || lstatSync(p).isSymbolicLink()) return false;
  }
  return true;
}

/** Removes the folders between `rel`'s and `out` that are now empty (a user's file in one keeps it). */
function pruneEmptyParents(out: string, rel: string): void {
  for (let d = dirname(normalize(rel)); d !== '.' && d !== '' && isInside(d); d = dirname(d)) {
    const p = join(out, d);
    if (!existsSync(p) || !statSync(p).isDirectory() || readdirSync(p).length > 0) return;
    rmdirSync(p);
  }
}

/** Writes the marker and removes what an earlier report wrote and this one did not. */
export function finishOutputDir(out: string, files: string[], previous: string[], createdAt: string): void {
  const now = new Set(files);
  for (const f of previous) {
    if (now.has(f) || !isInside(f)) continue;
    const p = join(out, f);
    if (noLinks(out, f) && statSync(p).isFile()) {
      rmSync(p);
      pruneEmptyParents(out, f);
    }
  }
  const marker: ReportMarker = { tool: 'peft report', version: 1, createdAt, files };
  writeFileSync(join(out, REPORT_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
}
