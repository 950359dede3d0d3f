/** docs/cli.md is generated from the commands' own definitions: it must match what --help prints now. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('docs/cli.md', () => {
  it('is what scripts/gen-cli-doc.mjs generates from the built CLI (rerun it after changing a command)', async () => {
    const { cliDoc } = await import(join(root, 'scripts/gen-cli-doc.mjs'));
    const generated: string = await cliDoc();
    expect(generated).toContain('### tdcollect dump');
    expect(generated).toContain('#### EXIT STATUS');
    expect(readFileSync(join(root, 'docs/cli.md'), 'utf8')).toBe(generated);
  });
});
