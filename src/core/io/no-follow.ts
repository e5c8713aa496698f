// Writing and deleting inside a folder peftjs owns (a run folder, a report,
// predictions) without ever following a symbolic link it did not create. A
// link planted where peftjs writes (`log.jsonl` -> ~/.bashrc, `runs/` ->
// /etc) would otherwise send the write, the truncation or the deletion
// outside the folder. The rules every writer follows:
// - whole files are written to a temp file in the folder and renamed over the
//   name (`writeFileAtomic`): a link at the name is replaced, never written
//   through;
// - appends and truncations open the name with O_NOFOLLOW: a link there is
//   refused, by name;
// - folders inside the owned folder are created or checked one level at a
//   time with lstat (`makeDirInside`): a link is refused;
// - deletions (`removeInside`) check that the parent's real path lies inside
//   the owned folder's real path, and never recurse through a link.
// The owned folder itself (the `--out` the user named, which may well be a
// link to a larger disk) is followed: only what is inside it is ours.
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { PeftError, errorReason } from '../errors.js';

/** The message for a symbolic link found where peftjs writes. */
export function linkRefused(path: string): PeftError {
  return new PeftError(`${path}: is a symbolic link; peftjs never writes or deletes through a link it did not make (remove the link, or choose another folder)`);
}

function isLinkError(err: unknown): boolean {
  // O_NOFOLLOW on a link: ELOOP on Linux, EMLINK on FreeBSD, EFTYPE on NetBSD
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'EMLINK' || code === 'EFTYPE';
}

/** Opens `path` for writing without following a link; refuses anything but a regular file. */
function openNoFollow(path: string, flags: number, what: string): number {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO named like the file fails at once (ENXIO) instead of waiting for a reader
    fd = openSync(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY, 0o644);
  } catch (err) {
    if (isLinkError(err)) throw linkRefused(path);
    throw new PeftError(`${path}: cannot ${what} (${errorReason(err)})`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new PeftError(`${path}: not a regular file; cannot ${what}`);
  } catch (err) {
    closeSync(fd);
    throw err instanceof PeftError ? err : new PeftError(`${path}: cannot ${what} (${errorReason(err)})`);
  }
  return fd;
}

/** Appends `text` to the regular file `path` (created if missing) in one write; a symbolic link at `path` is refused. `what` words the error (`cannot <what> (ENOSPC)`). */
export function appendNoFollow(path: string, text: string, what = 'append to it'): void {
  const fd = openNoFollow(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, what);
  try {
    const bytes = Buffer.from(text);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } catch (err) {
    throw new PeftError(`${path}: cannot ${what} (${errorReason(err)})`);
  } finally {
    closeSync(fd);
  }
}

/** Cuts the regular file `path` to `bytes`; a symbolic link at `path` is refused. */
export function truncateNoFollow(path: string, bytes: number): void {
  const fd = openNoFollow(path, constants.O_WRONLY, 'truncate it');
  try {
    ftruncateSync(fd, bytes);
  } catch (err) {
    throw new PeftError(`${path}: cannot truncate it (${errorReason(err)})`);
  } finally {
    closeSync(fd);
  }
}

/** Whether `path` is a symbolic link (false when it does not exist). */
export function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** `rel` split into its parts, refused when it leaves the folder (`..`, absolute). */
function partsInside(root: string, rel: string): string[] {
  if (isAbsolute(rel)) rel = relative(root, rel);
  const parts = rel.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new PeftError(`${join(root, rel)}: outside ${root}`);
  return parts;
}

/**
 * Creates the folder `rel` inside `root` (relative, or an absolute path under
 * `root`), one level at a time; every level that exists must be a real
 * folder, not a symbolic link. `root` itself must exist (it may be a link: the
 * user chose it). Returns the folder's path.
 */
export function makeDirInside(root: string, rel: string): string {
  let p = resolve(root);
  for (const part of partsInside(p, rel)) {
    p = join(p, part);
    try {
      mkdirSync(p);
      continue;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new PeftError(`${p}: cannot create the folder (${errorReason(err)})`);
    }
    const st = lstatSync(p);
    if (st.isSymbolicLink()) throw linkRefused(p);
    if (!st.isDirectory()) throw new PeftError(`${p}: exists and is not a folder`);
  }
  return p;
}

/** Whether `path` is `root` or lies under it (both real paths). */
function within(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Removes `path` (a file, a link, or a folder and everything in it) when it
 * lies inside `root`: the real path of its parent must be inside `root`'s real
 * path, so nothing is reached through a linked folder; a link at `path` is
 * removed itself, and the removal of a folder never recurses through a link.
 * Missing is fine. Returns whether something was removed.
 */
export function removeInside(root: string, path: string): boolean {
  const abs = resolve(path);
  let parent: string;
  let realRoot: string;
  try {
    lstatSync(abs);
    parent = realpathSync(dirname(abs));
    realRoot = realpathSync(resolve(root));
  } catch {
    return false; // nothing there (or no way to reach it): nothing to remove
  }
  if (!within(realRoot, parent)) {
    throw new PeftError(`${abs}: not removed, it is not inside ${root}`);
  }
  // fs.rm uses lstat: a link is unlinked, never followed, at any depth
  rmSync(join(parent, basename(abs)), { recursive: true, force: true });
  return true;
}
