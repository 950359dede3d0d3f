/**
 * Freezer plumbing that needs no tree: the /proc/PID/stat reader (comm with spaces and parentheses), the
 * wait-status decoding, and the cgroup-freeze state files (a record left by a dead collector is thawed and
 * removed; one whose collector runs is left alone). The "cgroup" here is a plain directory holding a
 * cgroup.freeze file, so the thaw is observable without freezing anything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStat } from '../../src/collector/freeze/procread.js';
import * as pt from '../../src/sys/ptrace.js';
import {
  listRecords, ownerAlive, recordFile, recoverStaleFreezes, startTimeOf, writeRecord,
} from '../../src/collector/freeze/statefile.js';

const tmp = mkdtempSync(join(tmpdir(), 'tdc-freeze-unit-'));
beforeAll(() => { process.env.TDCOLLECT_STATE_DIR = join(tmp, 'state'); });
afterAll(() => { delete process.env.TDCOLLECT_STATE_DIR; rmSync(tmp, { recursive: true, force: true }); });

describe('readStat', () => {
  it('parses state, ppid and num_threads after the LAST parenthesis', () => {
    const f = join(tmp, 'stat');
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
    // cstime priority nice num_threads ...
    writeFileSync(f, '4242 (a) b (c) T 17 4242 4242 0 -1 4194560 90 0 0 0 1 2 0 0 20 0 3 0 12345 0 0\n');
    expect(readStat(f)).toEqual({ state: 'T', ppid: 17, numThreads: 3, startTime: 12345 });
    writeFileSync(f, '7 (x) Z 1 7 7 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n');
    expect(readStat(f)).toEqual({ state: 'Z', ppid: 1, numThreads: 1, startTime: 99 });
    expect(readStat(join(tmp, 'missing'))).toBeUndefined();
  });
  it('agrees with /proc for this process', () => {
    const st = readStat(`/proc/${process.pid}/stat`)!;
    expect(st.ppid).toBe(process.ppid);
    const threads = readdirSync(`/proc/${process.pid}/task`).length;
    expect(st.numThreads).toBe(threads);
  });
});

describe('wait status decoding', () => {
  it('matches the <sys/wait.h> macros', () => {
    expect(pt.WIFEXITED(0x0300)).toBe(true); // exit(3)
    expect(pt.WIFSIGNALED(0x0300)).toBe(false);
    expect(pt.WIFSIGNALED(0x0009)).toBe(true); // killed by SIGKILL
    expect(pt.WIFSTOPPED(0x0009)).toBe(false);
    // PTRACE_EVENT_STOP after PTRACE_INTERRUPT: (SIGTRAP | PTRACE_EVENT_STOP << 8) << 8 | 0x7f
    const interrupt = ((pt.SIGTRAP | (pt.PTRACE_EVENT_STOP << 8)) << 8) | 0x7f;
    expect(pt.WIFSTOPPED(interrupt)).toBe(true);
    expect(pt.WSTOPSIG(interrupt)).toBe(pt.SIGTRAP);
    expect(pt.WPTRACEEVENT(interrupt)).toBe(pt.PTRACE_EVENT_STOP);
    // group stop of a SIGSTOPped tracee: event STOP, signal SIGSTOP
    const group = ((pt.SIGSTOP | (pt.PTRACE_EVENT_STOP << 8)) << 8) | 0x7f;
    expect(pt.WSTOPSIG(group)).toBe(pt.SIGSTOP);
    expect(pt.WPTRACEEVENT(group)).toBe(pt.PTRACE_EVENT_STOP);
    // signal-delivery-stop of SIGCHLD: no event
    const sigstop = (pt.SIGCHLD << 8) | 0x7f;
    expect(pt.WPTRACEEVENT(sigstop)).toBe(0);
    expect(pt.WSTOPSIG(sigstop)).toBe(pt.SIGCHLD);
  });
});

describe('freeze state files', () => {
  it('records a freeze, and recovery thaws only those whose collector is gone', () => {
    const dead = join(tmp, 'cg-dead');
    const live = join(tmp, 'cg-live');
    for (const d of [dead, live]) { mkdirSync(d); writeFileSync(join(d, 'cgroup.freeze'), '1'); }
    // a pid that surely is not running: a child that has exited and been reaped
    const gone = spawnSync('true').pid!;
    const f1 = writeRecord({ cgroup: dead, hierarchy: 'v2', pid: gone, pidStart: 1, root: 1, time: 't1' });
    const f2 = writeRecord({
      cgroup: live, hierarchy: 'v2', pid: process.pid, pidStart: startTimeOf(process.pid)!, root: 1, time: 't2',
    });
    expect(f1).toBe(recordFile(dead));
    expect(listRecords().map((r) => r.rec.cgroup).sort()).toEqual([dead, live].sort());
    expect(ownerAlive(listRecords().find((r) => r.rec.cgroup === live)!.rec)).toBe(true);
    const thawed = recoverStaleFreezes();
    expect(thawed.map((r) => r.cgroup)).toEqual([dead]);
    expect(readFileSync(join(dead, 'cgroup.freeze'), 'latin1')).toBe('0');
    expect(readFileSync(join(live, 'cgroup.freeze'), 'latin1')).toBe('1');
    expect(listRecords().map((r) => r.file)).toEqual([f2]);
  });
  it('a reused pid (same pid, other start time) counts as gone', () => {
    expect(ownerAlive({ cgroup: '/x', hierarchy: 'v2', pid: process.pid, pidStart: 1, root: 1, time: '' })).toBe(false);
  });
});
