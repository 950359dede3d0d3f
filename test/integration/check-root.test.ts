/**
 * checkRoot reads the root's stat and status through the one /proc reader: a missing pid, a kernel thread
 * and a thread id are refused with NoProcessError naming what they are; a process gives its NSpid chain,
 * compared with the status text read independently.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { checkRoot } from '../../src/collector/collect.js';
import { NoProcessError } from '../../src/errors.js';
import { killAllTrees, spawnTree } from '../helpers/tree.js';

afterAll(killAllTrees);

function nsPidLine(pid: number): number[] {
  const m = /\nNSpid:([\t 0-9]*)\n/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))!;
  return m[1].trim().split(/\s+/).map(Number);
}

/** A kernel thread: PF_KTHREAD (0x00200000) in stat field 9. */
function kernelThread(): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[6]) & 0x00200000) return Number(name);
    } catch { /* gone */ }
  }
  throw new Error('no kernel thread visible in /proc');
}

describe('checkRoot', () => {
  it('a process: its NSpid chain; a thread of it: refused naming the process', async () => {
    const tree = await spawnTree({ procs: 1, rootThreads: 2 });
    try {
      expect(checkRoot(tree.root)).toEqual(nsPidLine(tree.root));
      expect(checkRoot(process.pid)).toEqual(nsPidLine(process.pid));
      const thread = tree.procs.get(tree.root)!.tids.find((t) => t !== tree.root)!;
      expect(() => checkRoot(thread)).toThrow(NoProcessError);
      expect(() => checkRoot(thread)).toThrow(`pid ${thread} is a thread of process ${tree.root}`);
    } finally {
      await tree.kill();
    }
  });

  it('a kernel thread and a pid that does not exist are refused', () => {
    const k = kernelThread();
    expect(() => checkRoot(k)).toThrow(`pid ${k} is a kernel thread`);
    expect(() => checkRoot(0x3ffffff0)).toThrow(NoProcessError);
  });
});
