/**
 * Leftovers of killed dumps: a `tdcollect dump --force` killed with SIGKILL while it replaces a directory
 * leaves `.NAME.tmp-…` (killed while writing) or `.NAME.old-…` (killed between moving the previous dump aside
 * and removing it). The next dump to the same place removes them, and nothing else: not the leftovers of a
 * live writer, of another pid namespace or of another target, not a file, not a name of another form.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { readImages } from '../../src/image/read.js';
import { leftoverOwner } from '../../src/image/write.js';
import { ownerGone, ownerTag } from '../../src/collector/owner.js';
import { readStat } from '../../src/collector/freeze/procread.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');

let tree: Tree;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tdc-leftovers-'));
  tree = await spawnTree({ procs: 1500 });
});
afterAll(async () => {
  await killAllTrees();
  rmSync(work, { recursive: true, force: true });
});

function dump(out: string): void {
  const r = spawnSync(process.execPath, [BIN, 'dump', '-r', String(tree.root), '-o', out, '-q', '--force'],
    { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}

/** Start a --force dump into out and SIGKILL it as soon as a leftover of `kind` appears beside out. */
async function killWhen(parent: string, name: string, kind: 'tmp' | 'old'): Promise<boolean> {
  const child = spawn(process.execPath, [BIN, 'dump', '-r', String(tree.root), '-o', join(parent, name), '-q', '--force'],
    { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const prefix = `.${name}.${kind}-`;
  let hit = false;
  const deadline = Date.now() + 60_000;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    if (readdirSync(parent).some((n) => n.startsWith(prefix))) {
      child.kill('SIGKILL');
      hit = true;
      break;
    }
    // let the exit event through now and then
    await new Promise((r) => setImmediate(r));
  }
  await exited;
  return hit;
}

describe('leftovers of killed dumps', () => {
  it('the writer tag names this process, and gone() judges pid, start time and pid namespace', () => {
    const tag = ownerTag();
    const [start, ns] = tag.split('.').map(Number);
    expect(start).toBe(readStat(`/proc/${process.pid}/stat`)!.startTime);
    expect(ns).toBe(statSync('/proc/self/ns/pid').ino);
    expect(ownerGone(process.pid, tag)).toBe(false);
    expect(ownerGone(process.pid, undefined)).toBe(false);
    // same pid, another start time: the pid was reused, the writer is gone
    expect(ownerGone(process.pid, `${start + 1}.${ns}`)).toBe(true);
    // another pid namespace: not judged
    expect(ownerGone(process.pid, `${start + 1}.${ns + 1}`)).toBe(false);
    const dead = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
    expect(ownerGone(dead, undefined)).toBe(true);
    expect(ownerGone(dead, tag)).toBe(true);
    expect(leftoverOwner(`.img.tmp-${dead}-${tag}-0123abcd`, 'img')).toEqual({ pid: dead, tag });
    expect(leftoverOwner(`.img.old-${dead}-0123abcd`, 'img')).toEqual({ pid: dead, tag: undefined });
    expect(leftoverOwner(`.img.tmp-${dead}-${tag}-0123abcd`, 'im')).toBeUndefined();
    expect(leftoverOwner(`.img.tmp-${dead}-${tag}-0123abcde`, 'img')).toBeUndefined();
    expect(leftoverOwner(`.img.tmp-x${dead}-0123abcd`, 'img')).toBeUndefined();
  });

  it('a --force dump killed mid-replace leaves litter; the next dump removes it and nothing else', async () => {
    const parent = join(work, 'p');
    mkdirSync(parent);
    const name = 'img';
    const target = join(parent, name);
    dump(target);
    const litter = (): string[] => readdirSync(parent).filter((n) => n.startsWith(`.${name}.`));
    // killed while staging the new directory: its .tmp stays
    expect(await killWhen(parent, name, 'tmp')).toBe(true);
    expect(litter().some((n) => n.startsWith(`.${name}.tmp-`))).toBe(true);
    // killed after the previous dump was moved aside (a short window: a few tries); each try's dump first
    // removes the litter of the one before
    let sawOld = false;
    for (let i = 0; i < 10 && !sawOld; i++) sawOld = await killWhen(parent, name, 'old');
    expect(sawOld).toBe(true);
    expect(litter().some((n) => n.startsWith(`.${name}.old-`))).toBe(true);
    // (a kill that fell between moving the old dump aside and renaming the new one in leaves the new one's
    // .tmp as well: the dump below must remove both, which its final listing checks)
    // what must stay: a live writer's leftover (this process), another pid namespace's, another target's,
    // a file, names of another form
    const tag = ownerTag();
    const [start, ns] = tag.split('.').map(Number);
    const dead = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
    const keep = [
      `.${name}.tmp-${process.pid}-${tag}-00000001`,
      `.${name}.old-${dead}-${start}.${ns + 1}-00000002`,
      `.other.tmp-${dead}-${tag}-00000003`,
      `.${name}.tmp-${dead}-${tag}-0000004`,
      `${name}.tmp-${dead}-${tag}-00000005`,
      `.${name}.tmp-${dead}-${tag}-00000006.x`,
    ];
    for (const k of keep) mkdirSync(join(parent, k));
    // a file with a leftover's name is not ours to remove
    writeFileSync(join(parent, `.${name}.tmp-${dead}-${tag}-00000007`), 'not a directory');
    keep.push(`.${name}.tmp-${dead}-${tag}-00000007`);
    // a dead writer's leftover in the old form (no tag) goes
    mkdirSync(join(parent, `.${name}.old-${dead}-00000008`));
    dump(target);
    expect(readdirSync(parent).sort()).toEqual([name, ...keep].sort());
    expect(readImages(target).tasks.length).toBe(tree.tids.length);
  });
});
