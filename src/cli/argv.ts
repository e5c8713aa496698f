/**
 * Accepts Medical-SAM-Adapter's single-dash long flags (`-net mobile_sam
 * -mod sam_lora -image_size 256 -exp_name x -sam_ckpt f.pt`) by rewriting
 * them to `--net`, `--image-size`, …; single-letter flags (`-b 4`) and
 * negative numbers are left alone.
 */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^-([a-zA-Z][a-zA-Z0-9_]+)(=.*)?$/.exec(a);
    if (!m) return a;
    return `--${m[1]!.replace(/_/g, '-')}${m[2] ?? ''}`;
  });
}
