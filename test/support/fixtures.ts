// Where the reference fixtures are: $PEFT_FIXTURES, else ../shared/fixtures
// beside the checkout (as CI lays it out). Tests that need them fail loudly
// under CI when they are missing, and are skipped with a reason elsewhere.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));

export const FIXTURES = process.env.PEFT_FIXTURES ?? join(root, '..', 'shared', 'fixtures');
export const HAVE_FIXTURES = existsSync(join(FIXTURES, 'README.md'));

if (!HAVE_FIXTURES && process.env.CI) {
  throw new Error(`reference fixtures not found at ${FIXTURES} (set PEFT_FIXTURES)`);
}

export function fixture(name: string): string {
  return join(FIXTURES, name);
}
