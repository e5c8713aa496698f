// Reading a file the user named (a checkpoint, an adapter, run.json, a
// plugin, an image): only regular files, and never more than a size fixed per
// kind of file. `/dev/zero` (or a symlink to it) read whole grows without limit
// and a FIFO blocks the reader forever, deaf to SIGINT; both are refused here,
// naming the path and what it is.
//
// The path is stat'ed first, so a device is never even opened (opening one can
// have effects of its own); then it is opened with O_NONBLOCK (an open of a
// FIFO swapped in since the stat returns at once instead of waiting for a
// writer) and O_NOCTTY, and the open descriptor is stat'ed again: what is read
// is what was checked, whatever was renamed in between. The size is the
// fstat's, and exactly that many bytes are read.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { PeftError, errorReason } from '../errors.js';

/** What is being read, which fixes its size limit and how errors call it. */
export type FileKind = 'json' | 'weights' | 'plugin' | 'image';

const MiB = 1024 * 1024;

/**
 * The largest file of each kind read, in bytes: JSON configs (adapter_config.json,
 * run.json, plugins.json, trainer_state.json, package.json) 16 MiB; weights
 * (safetensors, torch.save zips) 4 GiB, the largest buffer Node 20 can hold;
 * a plugin's entry module 64 MiB; images 512 MiB (image-io passes its own
 * `imageLimits.maxFileBytes`, the same today).
 */
export const FILE_SIZE_LIMITS: Readonly<Record<FileKind, number>> = {
  json: 16 * MiB,
  weights: Math.min(bufferConstants.MAX_LENGTH, 4 * 1024 * MiB),
  plugin: 64 * MiB,
  image: 512 * MiB,
};

const KIND_NAME: Record<FileKind, string> = { json: 'JSON file', weights: 'weights file', plugin: 'plugin module', image: 'image file' };

/** What a non-regular file is, for a message. */
function whatItIs(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  return 'something else';
}

/** ` (a symlink to <target>)` when `path` is a symlink, for a message. */
function throughLink(path: string): string {
  try {
    return lstatSync(path).isSymbolicLink() ? ` (a symlink to ${realpathSync(path)})` : '';
  } catch {
    return '';
  }
}

function refuseStats(path: string, st: Stats, kind: FileKind, maxBytes: number): void {
  if (!st.isFile()) throw new PeftError(`${path}${throughLink(path)}: ${whatItIs(st)}, not a regular file; only regular files are read`);
  if (st.size > maxBytes) throw new PeftError(`${path}: ${st.size} bytes, more than the ${maxBytes}-byte limit of a ${KIND_NAME[kind]}`);
}

function cannot(path: string, err: unknown): PeftError {
  if (err instanceof PeftError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new PeftError(`${path}: no such file`);
  if (code === 'ENOTDIR') return new PeftError(`${path}: no such file (a parent is not a folder)`);
  return new PeftError(`${path}: cannot read (${errorReason(err)})`);
}

/**
 * Checks that `path` is a regular file within the limit of its kind, without
 * reading it (for files another reader opens, such as a plugin module that
 * `import()` loads); returns its size.
 */
export function checkRegularFile(path: string, kind: FileKind, maxBytes = FILE_SIZE_LIMITS[kind]): number {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    throw cannot(path, err);
  }
  refuseStats(path, st, kind, maxBytes);
  return st.size;
}

/** The bytes of the regular file `path` (symlinks followed), at most `maxBytes` (by default the limit of its kind); anything else is a PeftError naming the path. */
export function readRegularFile(path: string, kind: FileKind, maxBytes = FILE_SIZE_LIMITS[kind]): Buffer {
  checkRegularFile(path, kind, maxBytes);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw cannot(path, err);
  }
  try {
    const st = fstatSync(fd);
    refuseStats(path, st, kind, maxBytes);
    const buf = Buffer.allocUnsafe(st.size);
    let done = 0;
    while (done < st.size) {
      // one read returns at most 2 GiB
      const n = readSync(fd, buf, done, Math.min(st.size - done, 1 << 30), done);
      if (n === 0) throw new PeftError(`${path}: the file shrank while it was read (${done} of ${st.size} bytes)`);
      done += n;
    }
    return buf;
  } catch (err) {
    throw cannot(path, err);
  } finally {
    closeSync(fd);
  }
}

/** The text (UTF-8) of the regular file `path`, within the limit of its kind. */
export function readRegularTextFile(path: string, kind: FileKind = 'json', maxBytes = FILE_SIZE_LIMITS[kind]): string {
  return readRegularFile(path, kind, maxBytes).toString('utf8');
}
