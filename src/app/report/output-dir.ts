// The report's output directory. Nothing the user owns is overwritten: an
// existing directory is written into only when it is empty, holds a previous
// report (its marker file), or the user passed --force. Files a previous
// report wrote and this one does not are removed, and the folders (runs/,
// pictures/...) they leave empty; nothing else is.
//
// A report is built in a staging folder first (`openReportOutput`): beside
// `--out` when it does not exist yet (then renamed into place), else inside
// it. A failure while building (a full disk, a bug) removes the staging
// folder and leaves `--out` as it was; only a complete report is moved in.
// Nothing is written, moved or deleted through a symbolic link: a link where
// the report puts a folder (`runs/` -> elsewhere) is refused before anything
// moves, a link where it puts a file (`index.html`) is replaced by the
// rename, never written through, and a stale file is removed only when its
// real parent lies inside `--out` (src/core/io/no-follow.ts).
import { lstatSync, mkdirSync, readdirSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { makeDir } from '../../core/io/make-dir.js';
import { linkRefused, makeDirInside, removeInside } from '../../core/io/no-follow.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';

/** The marker a report leaves in its directory: which tool wrote it and the files it wrote. */
export const REPORT_MARKER = '.peft-report.json';
/** Staging folders are named `.peft-report-tmp-<pid>-<random>`; those of killed reports are removed by the next. */
const STAGING_PREFIX = '.peft-report-tmp-';

export interface ReportMarker {
  tool: 'peft report';
  version: 1;
  createdAt: string;
  files: string[];
}

/** The files a previous report in `out` wrote (its marker), or undefined when `out` holds no marker. */
function previousFiles(out: string): string[] | undefined {
  const markerFile = join(out, REPORT_MARKER);
  let st;
  try {
    st = lstatSync(markerFile);
  } catch {
    return undefined;
  }
  // a marker that is a link or not a file was not written by a report
  if (!st.isFile()) return undefined;
  try {
    const m = JSON.parse(readRegularTextFile(markerFile, 'json')) as Partial<ReportMarker>;
    return Array.isArray(m.files) ? m.files.filter((f): f is string => typeof f === 'string') : [];
  } catch {
    return [];
  }
}

/** Checks that the existing folder `out` may take a report; returns the files a previous report there wrote. */
function prepareOutputDir(out: string, force: boolean): string[] {
  const previous = previousFiles(out);
  if (previous) return previous;
  if (readdirSync(out).filter((n) => !n.startsWith(STAGING_PREFIX)).length === 0 || force) return [];
  throw new PeftError(`${out}: directory exists and holds no previous report (${REPORT_MARKER}); choose another --out, or pass --force to write the report files into it`);
}

/** A path a marker may name: relative, inside the directory. */
function isInside(file: string): boolean {
  const n = normalize(file);
  return !isAbsolute(n) && !n.startsWith('..') && n !== '.' && n !== REPORT_MARKER;
}

/** Removes the folders between `rel`'s and `out` that are now empty (a user's file in one keeps it; a link is never followed). */
function pruneEmptyParents(out: string, rel: string): void {
  for (let d = dirname(normalize(rel)); d !== '.' && d !== '' && isInside(d); d = dirname(d)) {
    const p = join(out, d);
    try {
      if (!lstatSync(p).isDirectory() || readdirSync(p).length > 0) return;
      rmdirSync(p);
    } catch {
      return;
    }
  }
}

/** Removes what an earlier report wrote and this one did not: regular files and links inside `out`, never through a link. */
function removeStale(out: string, files: string[], previous: string[]): void {
  const now = new Set(files);
  for (const f of previous) {
    if (now.has(f) || !isInside(f)) continue;
    const p = join(out, f);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (!st.isFile() && !st.isSymbolicLink()) continue;
    try {
      // refuses (throws) when p's real parent is outside out: a linked folder on the way
      removeInside(out, p);
    } catch (err) {
      if (err instanceof PeftError) continue;
      throw err;
    }
    pruneEmptyParents(out, f);
  }
}

function markerText(files: string[], createdAt: string): string {
  const marker: ReportMarker = { tool: 'peft report', version: 1, createdAt, files };
  return `${JSON.stringify(marker, null, 2)}\n`;
}

/** A report being built: files are written into a staging folder and moved into `out` by `commit`. */
export interface ReportOutput {
  readonly out: string;
  /** Files written so far, relative to `out`. */
  readonly files: string[];
  /** Writes one file of the report (a path relative to `out`). */
  write(rel: string, data: string | Uint8Array): void;
  /** Moves the report into `out`, removes the previous report's stale files, writes the marker. */
  commit(createdAt: string): void;
  /** Removes the staging folder (after a failure); `out` is left as it was. Safe to call twice. */
  abort(): void;
}

/** One line for a file-system error while writing the report; a full disk says so. */
function writeError(out: string, err: unknown, changed: boolean): PeftError {
  if (err instanceof PeftError && !/ENOSPC|EDQUOT/.test(err.message)) return err;
  const code = (err as NodeJS.ErrnoException).code ?? (err instanceof PeftError && /EDQUOT/.test(err.message) ? 'EDQUOT' : err instanceof PeftError && /ENOSPC/.test(err.message) ? 'ENOSPC' : undefined);
  const what = code === 'ENOSPC' ? 'disk full (ENOSPC)' : code === 'EDQUOT' ? 'disk quota exceeded (EDQUOT)' : errorReason(err);
  const left = changed ? 'the previous report there is partly replaced; run peft report again' : 'nothing in it was changed';
  return new PeftError(`${out}: cannot write the report: ${what}; ${left}`, { cause: err });
}

/** Splits a report-relative path into its parts, refusing one that leaves the report. */
function relParts(rel: string): string[] {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..') || isAbsolute(rel) || rel.includes('\\')) throw new Error(`not a report path: ${JSON.stringify(rel)}`);
  return parts;
}

/**
 * Checks that `out` can take the report's files without writing through a
 * link: every folder on the way is a real folder or missing, every file a
 * regular file, a link (replaced by the rename) or missing.
 */
function checkDestinations(out: string, files: string[]): void {
  const seen = new Set<string>();
  for (const rel of files) {
    const parts = relParts(rel);
    let p = out;
    for (const [i, part] of parts.entries()) {
      p = join(p, part);
      const last = i === parts.length - 1;
      if (!last && seen.has(p)) continue;
      let st;
      try {
        st = lstatSync(p);
      } catch {
        break; // missing: created by the move
      }
      if (!last) {
        seen.add(p);
        if (st.isSymbolicLink()) throw linkRefused(p);
        if (!st.isDirectory()) throw new PeftError(`${p}: a file where the report puts a folder; remove it or choose another --out`);
      } else if (st.isDirectory()) {
        throw new PeftError(`${p}: a folder where the report puts a file; remove it or choose another --out`);
      }
    }
  }
}

/**
 * Opens `out` for a new report: checks it may be written (see the file's
 * head), removes staging folders of killed reports, and creates this one's.
 */
export function openReportOutput(out: string, force: boolean): ReportOutput {
  let exists = false;
  try {
    exists = statSync(out).isDirectory();
    if (!exists) throw new PeftError(`${out}: exists and is not a directory; choose another --out`);
  } catch (err) {
    if (err instanceof PeftError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PeftError(`${out}: cannot use it as the report folder (${errorReason(err)})`);
  }
  const previous = exists ? prepareOutputDir(out, force) : [];
  const parent = exists ? out : dirname(out);
  if (exists) {
    for (const n of readdirSync(out)) if (n.startsWith(STAGING_PREFIX)) removeInside(out, join(out, n));
  } else {
    try {
      makeDir(parent);
    } catch (err) {
      throw new PeftError(`${out}: cannot create the report folder (${errorReason(err)})`);
    }
  }
  const stagingName = exists ? `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}` : `.${basename(out)}${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(parent, stagingName);
  try {
    mkdirSync(staging);
  } catch (err) {
    throw writeError(out, err, false);
  }
  const files: string[] = [];
  let changed = false;
  let done = false;

  const abort = () => {
    if (done) return;
    done = true;
    try {
      removeInside(parent, staging);
    } catch {
      // the staging folder is named as ours: the next report removes it
    }
  };

  return {
    out,
    files,
    write(rel, data) {
      const parts = relParts(rel);
      try {
        if (parts.length > 1) makeDirInside(staging, parts.slice(0, -1).join('/'));
        // 'wx': the staging folder is new and ours; nothing may already be there
        writeFileSync(join(staging, ...parts), data, { flag: 'wx' });
      } catch (err) {
        throw writeError(out, err, false);
      }
      if (!files.includes(rel)) files.push(rel);
    },
    commit(createdAt) {
      try {
        writeFileSync(join(staging, REPORT_MARKER), markerText(files, createdAt), { flag: 'wx' });
        if (!exists) {
          // the whole report at once; fails if someone created out meanwhile
          renameSync(staging, out);
          done = true;
          return;
        }
        checkDestinations(out, files);
        // a marker listing old and new files first: a failure while moving leaves a folder the next report can clean
        const union = [...new Set([...previous.filter(isInside), ...files])];
        writeFileAtomic(join(out, REPORT_MARKER), markerText(union, createdAt));
        changed = true;
        for (const rel of files) {
          const parts = relParts(rel);
          if (parts.length > 1) makeDirInside(out, parts.slice(0, -1).join('/'));
          // rename replaces a file or a link at the name; it never writes through one
          renameSync(join(staging, ...parts), join(out, ...parts));
        }
        removeStale(out, files, previous);
        renameSync(join(staging, REPORT_MARKER), join(out, REPORT_MARKER));
      } catch (err) {
        abort();
        throw writeError(out, err, changed);
      }
      abort(); // the emptied staging folder
    },
    abort,
  };
}
