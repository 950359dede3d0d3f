/** tdcollect ps: -o field parsing and line rendering. */
import { describe, expect, it } from 'vitest';
import { COLUMNS, DEFAULT_FIELDS, parseFields, renderPs, sortTasks } from '../../src/cli/ps.js';
import { UsageError } from '../../src/errors.js';
import type { Task } from '../../src/collector/task.js';

const task = (over: Partial<Task> = {}): Task => ({
  pid: 300, tgid: 300, ppid: 1, tpid: 0, sid: 300, pgid: 300, state: 'S', comm: 'sleep',
  uid: 1001, euid: 1005, suid: 1006, fsuid: 1007, gid: 1002, egid: 1003, sgid: 1004, fsgid: 1008,
  capInh: [0, 0], capPrm: [0x4e1, 0], capEff: [0xc0, 0], capBnd: [0xffffffff, 0x1ff], capAmb: [0x420, 0],
  groups: [10, 20], securebits: 4, noNewPrivs: true, seccomp: 2, startTime: 4242, personality: 0x400000,
  flags: 0x400100, sigBlk: [0x200, 0], nice: 7, policy: 3, priority: 27, rtPriority: 0, exitCode: 0,
  futexRla: 0x7f0000001000, futexRlaLen: 24, ...over,
});

function render(tasks: Task[], fields: string[], headers = true): string {
  let out = '';
  renderPs(tasks, parseFields(fields), headers, { write: (s) => { out += s; } });
  return out;
}

describe('ps -o', () => {
  it('renders the default columns with a header, numbers right-aligned', () => {
    expect(render([task()], [DEFAULT_FIELDS])).toBe(
      '    PID    PPID    PGID     SID S   UID COMMAND\n' +
      '    300       1     300     300 S  1005 sleep\n');
  });

  it('uid/gid are the effective ids as in ps(1), ruid/rgid the real ones', () => {
    expect(render([task()], ['uid,ruid,euid,suid,fsuid,gid,rgid,egid,sgid,fsgid'], false).trim().split(/\s+/))
      .toEqual(['1005', '1001', '1005', '1006', '1007', '1003', '1002', '1003', '1004', '1008']);
  });

  it('renders masks as 16 hex digits and lists groups', () => {
    expect(render([task()], ['capbnd,capamb,sigblk,groups,nnp,seccomp,securebits,cls,ni,pri,flags,personality,robust'], false).trim().split(/\s+/))
      .toEqual(['000001ffffffffff', '0000000000000420', '0000000000000200', '10,20', '1', '2', '4', 'B', '7', '27',
        '00400100', '00400000', '7f0000001000']);
  });

  it('accepts ps aliases, repeated -o and a custom header for a field', () => {
    expect(render([task({ pid: 301 })], ['tgid,lwp', 'sess,s,ucmd=NAME'])).toBe(
      '    PID     TID     SID S NAME\n' +
      '    300     301     300 S sleep\n');
  });

  it('shows - for fields a source could not fill', () => {
    expect(render([task({ groups: undefined, securebits: undefined, capAmb: undefined })], ['groups,securebits,capamb'], false).trim().split(/\s+/))
      .toEqual(['-', '-', '-']);
  });

  it('rejects an unknown field and an empty list', () => {
    expect(() => parseFields(['pid,nope'])).toThrow(UsageError);
    expect(() => parseFields([' , '])).toThrow(UsageError);
  });

  it('every column has a header', () => {
    for (const [name, c] of Object.entries(COLUMNS)) expect(c.header.length, name).toBeGreaterThan(0);
  });
});

describe('sortTasks', () => {
  it('orders by process, leader first, then threads', () => {
    const ts = [task({ pid: 12, tgid: 10 }), task({ pid: 5, tgid: 5 }), task({ pid: 10, tgid: 10 }), task({ pid: 11, tgid: 10 })];
    expect(sortTasks(ts).map((t) => t.pid)).toEqual([5, 10, 11, 12]);
  });
});
