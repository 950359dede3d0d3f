/**
 * writeTask and writeCore (codec.ts), the direct encoders of tasks.img's task entries and CRIU's core
 * entries, against the message path they replace (taskToPb / coreEntry, then the generated encoders): the
 * same bytes for seeded random tasks with every optional field present or absent (leaders, threads, dead
 * processes), and the same refusals.
 */
import { describe, expect, it } from 'vitest';
import {
  coreEntry, pstreeEntry, taskToPb, writeCore, writePstree, writeTask, type ProcessGroup,
} from '../../src/image/codec.js';
import { Writer } from '../../src/image/pbwriter.js';
import { MESSAGES } from '../../src/image/schemas.gen.js';
import type { RecordedTask } from '../../src/collector/task.js';
import { prng } from '../helpers/random.js';

const viaMessage = (t: RecordedTask): string =>
  Buffer.from(MESSAGES['tdcollect.task'].encode(taskToPb(t)).finish()).toString('hex');
const direct = (t: RecordedTask): string => {
  const w = Writer.create();
  writeTask(w, t);
  return Buffer.from(w.finish()).toString('hex');
};
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

/**
 * Seeded random tasks: every optional field present or absent, values at the varint boundaries, seccomp
 * modes CRIU's core entry leaves out (3), non-ASCII and empty comms.
 */
function generator(seed: number) {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const u32 = () => [0, 1, 127, 128, 65535, 2 ** 31, 2 ** 32 - 1][int(7)] ?? int(2 ** 32);
  const mask = (): [number, number] => [u32(), u32()];
  const maybe = <T>(v: () => T): T | undefined => (rnd() < 0.5 ? v() : undefined);
  const task = (pid = u32(), tgid = u32()): RecordedTask => {
    const t: RecordedTask = {
      pid, tgid, ppid: u32(), tpid: u32(), sid: u32(), pgid: u32(),
      state: (['R', 'S', 'D', 'T', 't', 'Z', 'X', 'I'] as const)[int(8)],
      comm: ['sleep', '', 'kworker/0:1H-kblockd'.slice(0, 15), 'é€', 'x'.repeat(15)][int(5)],
      uid: u32(), euid: u32(), suid: u32(), fsuid: u32(), gid: u32(), egid: u32(), sgid: u32(), fsgid: u32(),
      capInh: mask(), capPrm: mask(), capEff: mask(), capBnd: mask(), capAmb: maybe(mask),
      groups: maybe(() => Array.from({ length: int(40) }, u32)),
      securebits: maybe(u32), noNewPrivs: maybe(() => rnd() < 0.5), seccomp: maybe(() => int(4)),
      startTime: maybe(() => [0, 2 ** 40 + 3, 2 ** 53 - 1][int(3)]), personality: maybe(u32), flags: maybe(u32),
      sigBlk: maybe(mask), nice: maybe(() => int(40) - 20), policy: maybe(() => int(7)),
      priority: maybe(() => int(140) - 100), rtPriority: maybe(() => int(100)), exitCode: maybe(() => int(512) - 256),
      futexRla: maybe(() => int(2 ** 47)), futexRlaLen: maybe(() => 24),
      collectorView: maybe(() => ({ pid: u32(), tgid: u32(), ppid: u32(), sid: u32(), pgid: u32() })),
      ns: maybe(() => ({ pid: u32(), mnt: maybe(u32), net: u32(), time: maybe(u32) })),
    };
    for (const k of Object.keys(t) as (keyof RecordedTask)[]) if (t[k] === undefined) delete t[k];
    return t;
  };
  return { int, task };
}

describe('writeTask', () => {
  it('writes what taskToPb and the generated encoder write, for random tasks', () => {
    const { task } = generator(0x7a5c);
    for (let i = 0; i < 500; i++) {
      const t = task();
      expect(direct(t), `task ${i}`).toBe(viaMessage(t));
    }
  });

  it('refuses what taskToPb refuses, with the same message', () => {
    const base: RecordedTask = {
      pid: 7, tgid: 7, ppid: 1, tpid: 0, sid: 7, pgid: 7, state: 'S', comm: 'x',
      uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
      capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: [0, 0],
    };
    const cases: Record<string, unknown>[] = [
      { pid: -1 }, { uid: 2 ** 32 }, { state: 'Q' }, { comm: 5 }, { capEff: [1] }, { groups: [1, -2] },
      { nice: 2 ** 31 }, { startTime: 2 ** 53 }, { noNewPrivs: 1 }, { collectorView: { pid: 1 } },
      { ns: { pid: 1, bogus: 2 } }, { extra: 1 }, { comm: undefined }, { capBnd: undefined, nice: 0.5 },
      { sid: undefined, pgid: undefined },
    ];
    for (const c of cases) {
      const t = { ...base, ...c } as RecordedTask;
      for (const k of Object.keys(t) as (keyof RecordedTask)[]) if (t[k] === undefined) delete t[k];
      const want = errorOf(() => taskToPb(t));
      expect(want, JSON.stringify(c)).not.toBe('no error');
      expect(errorOf(() => direct(t)), JSON.stringify(c)).toBe(want);
    }
  });

  it('tasks that share their credentials, then differ in one of them: the same bytes and refusals every time', () => {
    // writeTask and writeCore reuse the credential bytes of the task before when its values are the same, so
    // a run of tasks alike but for one credential value must each come out as the message path writes it
    const { task } = generator(0x51a3);
    const viaCore = (t: RecordedTask) => {
      const g: ProcessGroup = { leader: t, threads: [] };
      return Buffer.from(MESSAGES.core_entry.encode(coreEntry(t, g, 1)).finish()).toString('hex');
    };
    const directCore = (t: RecordedTask) => {
      const w = Writer.create();
      writeCore(w, t, { leader: t, threads: [] }, 1);
      return Buffer.from(w.finish()).toString('hex');
    };
    const changes: Partial<RecordedTask>[] = [
      { uid: 7 }, { euid: 7 }, { suid: 7 }, { fsuid: 7 }, { gid: 7 }, { egid: 7 }, { sgid: 7 }, { fsgid: 7 },
      { capInh: [1, 2] }, { capPrm: [1, 2] }, { capEff: [1, 2] }, { capBnd: [1, 2] }, { capAmb: [1, 2] }, { capAmb: undefined },
      { groups: [1, 2, 3] }, { groups: [] }, { groups: undefined }, { securebits: 3 }, { securebits: undefined },
      { noNewPrivs: true }, { noNewPrivs: false }, { noNewPrivs: undefined }, { seccomp: 2 }, { seccomp: undefined },
    ];
    for (let i = 0; i < 40; i++) {
      const base = task(100 + i, 100 + i);
      // each change between two tasks alike: it meets the base's bytes, and the base after it meets its own
      for (const [c, pid] of changes.flatMap((c) => [[{}, 1], [c, 2], [c, 3], [{}, 4]] as const)) {
        {
          const t = { ...base, ...c, pid } as RecordedTask;
          for (const k of Object.keys(t) as (keyof RecordedTask)[]) if (t[k] === undefined) delete t[k];
          expect(direct(t), `task ${i} ${JSON.stringify(c)}`).toBe(viaMessage(t));
          expect(directCore(t), `core ${i} ${JSON.stringify(c)}`).toBe(viaCore(t));
        }
      }
    }
    // after a valid task, one alike but for a value tasks.img cannot store is refused as taskToPb refuses it
    const base = task(5, 5);
    // a capability set with the base's two words and one more: alike in what a reuse would compare
    const longer = { capInh: [base.capInh[0], base.capInh[1], 0] };
    for (const c of [longer, { groups: [-1] }, { uid: -1 }, { uid: undefined }, { seccomp: 2 ** 32 }, { noNewPrivs: 1 }]) {
      direct(base);
      const t = { ...base, ...c } as unknown as RecordedTask;
      for (const k of Object.keys(t) as (keyof RecordedTask)[]) if (t[k] === undefined) delete t[k];
      const want = errorOf(() => taskToPb(t));
      expect(want, JSON.stringify(c)).not.toBe('no error');
      expect(errorOf(() => direct(t)), JSON.stringify(c)).toBe(want);
    }
  });

  it('writeCore and writePstree write what coreEntry, pstreeEntry and the generated encoders write', () => {
    const { int, task } = generator(0xc0de);
    const viaCore = (t: RecordedTask, g: ProcessGroup, mtype: number) =>
      Buffer.from(MESSAGES.core_entry.encode(coreEntry(t, g, mtype)).finish()).toString('hex');
    const directCore = (t: RecordedTask, g: ProcessGroup, mtype: number) => {
      const w = Writer.create();
      writeCore(w, t, g, mtype);
      return Buffer.from(w.finish()).toString('hex');
    };
    for (let i = 0; i < 500; i++) {
      const leader = task(1000 + i, 1000 + i);
      const threads = Array.from({ length: int(3) }, (_, k) => task(5000 + 10 * i + k, leader.pid));
      const g: ProcessGroup = { leader, threads };
      const mtype = [1, 3, 7][int(3)];
      for (const t of [leader, ...threads]) expect(directCore(t, g, mtype), `group ${i} task ${t.pid}`).toBe(viaCore(t, g, mtype));
      for (const isRoot of [false, true]) {
        const pw = Writer.create();
        writePstree(pw, g, isRoot);
        expect(Buffer.from(pw.finish()).toString('hex'), `pstree ${i}`)
          .toBe(Buffer.from(MESSAGES.pstree_entry.encode(pstreeEntry(g, isRoot)).finish()).toString('hex'));
      }
    }
    const noCaps = { pid: 9, tgid: 9, state: 'S', comm: 'x', capInh: [0, 0], capPrm: [0, 0] } as unknown as RecordedTask;
    const g = { leader: noCaps, threads: [] };
    expect(errorOf(() => directCore(noCaps, g, 1))).toBe(errorOf(() => viaCore(noCaps, g, 1)));
    expect(errorOf(() => directCore(noCaps, g, 1))).toMatch(/has no capEff recorded/);
  });
});
