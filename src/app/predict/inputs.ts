// The images `peft predict` is given: files, folders (their image files, not
// their subfolders) and glob patterns (tinyglobby: `data/Test-400/*/*.jpg`,
// `scans/**/*.png`), in the order given, each folder's and pattern's matches
// sorted by path, every file once. A named file that does not exist stays in
// the list (it fails as an unreadable image, with the others going on); a
// pattern that matches nothing or a folder without images is an error.
import { readdirSync, statSync } from 'node:fs';
import { extname, join, relative, resolve, isAbsolute, sep } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { PeftError } from '../../core/errors.js';

/** File extensions a folder's images are recognised by (the readers decide the format by content). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.dcm', '.dicom'];

const isImageName = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());

function statOf(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

const inside = (path: string, dir: string) => {
  const r = relative(dir, path);
  return r !== '' && !r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r);
};

export interface ExpandOptions {
  /** Leave out files under this folder (the output folder, so a second run does not read the first's masks). */
  exclude?: string;
  cwd?: string;
}

/** The image files of `inputs`, as absolute paths. */
export async function expandInputs(inputs: readonly string[], o: ExpandOptions = {}): Promise<string[]> {
  if (inputs.length === 0) throw new PeftError('no images given: name image files, folders or glob patterns (e.g. "data/Test-400/*/*.jpg")');
  const cwd = o.cwd ?? process.cwd();
  const exclude = o.exclude === undefined ? undefined : resolve(cwd, o.exclude);
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    if (seen.has(p) || (exclude && inside(p, exclude))) return;
    seen.add(p);
    out.push(p);
  };
  for (const input of inputs) {
    const abs = resolve(cwd, input);
    const st = statOf(abs);
    if (st?.isDirectory()) {
      const files = readdirSync(abs)
        .filter((n) => isImageName(n) && statOf(join(abs, n))?.isFile())
        .map((n) => join(abs, n))
        .sort();
      if (files.length === 0) throw new PeftError(`${input}: a folder with no image files (${IMAGE_EXTENSIONS.join(', ')}); for images in subfolders use a pattern such as "${join(input, '*', '*.jpg')}"`);
      files.forEach(add);
    } else if (!st && isDynamicPattern(input)) {
      const files = (await glob([input], { cwd, absolute: true, onlyFiles: true, expandDirectories: false })).map((f) => resolve(f)).sort();
      if (files.length === 0) throw new PeftError(`${input}: no file matches this pattern`);
      files.forEach(add);
    } else {
      add(abs);
    }
  }
  if (out.length === 0) throw new PeftError(`no images left: every input lies in the output folder ${o.exclude}`);
  return out;
}
