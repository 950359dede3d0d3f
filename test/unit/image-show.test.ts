/** The `show` tree renderer: shape, compact threads, deep chains (iterative, collapsed indentation). */
import { describe, expect, it } from 'vitest';
import type { Snapshot, Task } from '../../src/collector/task.js';
import { renderTree } from '../../src/cli/show.js';

const task = (pid: number, tgid: number, ppid: number, extra: Partial<Task> = {}): Task => ({
  pid, tgid, ppid, tpid: 0, sid: 1, pgid: 1, state: 'S', comm: `c${pid}`,
  uid: 0, euid: 0, suid: 0, fsuid: 0, gid: 0, egid: 0, sgid: 0, fsgid: 0,
  capInh: [0, 0], capPrm: [0, 0], capEff: [0, 0], capBnd: [0, 0], ...extra,
});
const snap = (tasks: Task[]): Snapshot => ({
  info: {
    formatVersion: 1, tool: 't', source: 'procfs', freeze: 'ptrace', live: false, kernel: '6.18', hostname: 'h',
    root: tasks[0].pid, createdAt: 0, processes: tasks.filter((t) => t.pid === t.tgid).length, threads: tasks.length,
    timings: {}, missing: [],
  },
  tasks,
});
const render = (s: Snapshot): string[] => {
  const parts: string[] = [];
  renderTree(s, { write: (x) => parts.push(x) });
  return parts.join('').trimEnd().split('\n');
};

describe('show tree', () => {
  it('draws processes pstree-style with threads on the process line', () => {
    const lines = render(snap([
      task(1, 1, 0), task(2, 1, 0, { state: 'R' }),
      task(10, 10, 1, { uid: 1001, euid: 0 }), task(11, 11, 10, { state: 'Z' }),
      task(20, 20, 1, { state: 'T' }), ...[21, 22, 23, 24, 25].map((p) => task(p, 20, 1, { state: 'T' })),
    ]));
    expect(lines).toEqual([
      'root 1: 4 processes, 10 threads; source procfs, freeze ptrace; 1970-01-01T00:00:00.000Z on h (6.18)',
      '1 S uid=0 c1  [+1 thread: 2 R]',
      '├─ 10 S uid=1001 euid=0 c10',
      '│  └─ 11 Z uid=0 c11',
      '└─ 20 T uid=0 c20  [+5 threads: 21 T, 22 T, 23 T, 24 T, … 1 more]',
    ]);
  });

  it('a 10,000-deep chain renders without recursion and with bounded indentation', () => {
    const tasks = [task(1, 1, 0)];
    for (let p = 2; p <= 10_000; p++) tasks.push(task(p, p, p - 1));
    const lines = render(snap(tasks));
    expect(lines).toHaveLength(10_001);
    expect(lines[10_000]).toBe('(depth 9999) └─ 10000 S uid=0 c10000');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(200);
  });
});
