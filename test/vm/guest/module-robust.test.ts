/**
 * Robustness of the task_diag module in the guest: concurrent dumps from several sockets, a tree that
 * churns during a dump, sockets closed mid-dump, module unload and reload between dumps. The harness
 * (test/vm/run.sh) fails the run if the kernel log shows any BUG / WARNING / Oops / lockdep report.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import {
  DUMP_ALL, DUMP_CHILDREN, DUMP_SUBTREE, DUMP_THREADS, MODULE, SHOW_CRED, SHOW_EXT, TDPROBE, decodeAll, probe,
  probeAsync, procPids, request, startTree, type Fixture,
} from './lib.js';

const strictlyAscending = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

describe('concurrency and churn', () => {
  let churn: Fixture<{ leader: number }>;
  let many: Fixture<{ leader: number; n: number }>;
  beforeAll(async () => {
    many = await startTree<{ leader: number; n: number }>(['many', '300']);
    churn = await startTree<{ leader: number }>(['churn']);
  });
  afterAll(async () => { await churn?.stop(); await many?.stop(); });

  it('6 sockets dumping at once (ALL with creds+ext, small buffers, slow readers) all finish cleanly', async () => {
    const req = request({ dump: true, show: SHOW_CRED | SHOW_EXT, strategy: DUMP_ALL, pid: 1 });
    const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => probeAsync(req, ['-b', i % 2 ? '4096' : '32768', '-d', '1'])));
    for (const r of runs) {
      expect(r.end).toBe('done');
      expect(r.truncated).toBe(false);
      const d = decodeAll(r);
      expect(d.done).toBe(0);
      const tgids = d.tasks.map((t) => t.task.tgid);
      for (const t of d.tasks) expect(t.task.pid, 'a task released mid-dump is left out, never sent with pid 0').toBeGreaterThan(0);
      expect(strictlyAscending(tgids)).toBe(true);
      expect(tgids).toContain(many.info.leader);
      expect(tgids.length).toBeGreaterThan(300);
    }
  });

  it('CHILDREN of a 300-child process across many datagrams: exactly the children, in order, once', async () => {
    const r = probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_CHILDREN, pid: many.info.leader }), ['-b', '4096']);
    const d = decodeAll(r);
    expect(d.done).toBe(0);
    expect(r.dgrams.length).toBeGreaterThan(5);
    const pids = d.tasks.map((t) => t.task.pid);
    expect(pids).toHaveLength(300);
    expect(new Set(pids).size).toBe(300);
    expect(strictlyAscending(pids)).toBe(true); // forked in sequence, no pid wrap in a fresh guest
    for (const t of d.tasks) expect(t.task.ppid).toBe(many.info.leader);
  });

  it('dumps of a churning tree (ALL, CHILDREN, THREADS, SUBTREE) end with NLMSG_DONE 0, no duplicates in ALL', async () => {
    const reqs = [
      request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 }),
      request({ dump: true, show: SHOW_CRED, strategy: DUMP_CHILDREN, pid: churn.info.leader }),
      request({ dump: true, show: SHOW_CRED | SHOW_EXT, strategy: DUMP_SUBTREE, pid: churn.info.leader }),
      request({ dump: true, show: SHOW_CRED, strategy: DUMP_SUBTREE, pid: 1 }),
      request({ dump: true, strategy: DUMP_THREADS, pid: churn.info.leader }),
    ];
    for (let round = 0; round < 4; round++) {
      const runs = await Promise.all(reqs.map((q) => probeAsync(q, ['-b', '4096', '-d', '2'])));
      for (const r of runs) {
        expect(r.end).toBe('done');
        const d = decodeAll(r);
        expect(d.done).toBe(0);
        for (const t of d.tasks) expect(t.task.pid * t.task.tgid, 'no pid 0 for tasks released mid-dump').toBeGreaterThan(0);
      }
      const all = decodeAll(runs[0]!).tasks.map((t) => t.task.tgid);
      expect(strictlyAscending(all)).toBe(true);
      const sub = decodeAll(runs[3]!).tasks.map((t) => t.task.pid);
      expect(new Set(sub).size).toBe(sub.length); // SUBTREE is a snapshot: each task once
      expect(sub[0]).toBe(1);
    }
  });

  it('sockets closed in the middle of dumps (SUBTREE snapshot freed, cursor dropped) leave the module usable', async () => {
    const reqs = [
      request({ dump: true, show: SHOW_CRED | SHOW_EXT, strategy: DUMP_SUBTREE, pid: 1 }),
      request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 }),
      request({ dump: true, show: SHOW_CRED, strategy: DUMP_CHILDREN, pid: many.info.leader }),
    ];
    for (let i = 0; i < 5; i++) {
      const rs = await Promise.all(reqs.map((q) => probeAsync(q, ['-b', '4096', '-m', '1'])));
      for (const r of rs) expect(r.end).toBe('max');
    }
    const d = decodeAll(probe(reqs[0]!));
    expect(d.done).toBe(0);
    expect(d.tasks.length).toBeGreaterThan(300);
  });
});

describe('module unload and reload', () => {
  const rmmod = (): void => { execFileSync('rmmod', ['task_diag'], { stdio: 'pipe' }); };
  const insmod = (): void => { execFileSync('insmod', [MODULE]); };
  afterAll(() => {
    try { execFileSync('grep', ['-q', '^task_diag ', '/proc/modules']); } catch { insmod(); }
  });

  it('unload -> family gone (lookup fails); reload -> dumps work again, several times', () => {
    const req = request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 });
    for (let i = 0; i < 3; i++) {
      expect(decodeAll(probe(req)).done).toBe(0);
      rmmod();
      let code = 0;
      try { execFileSync(TDPROBE, [req.toString('hex')], { stdio: 'pipe' }); } catch (e) { code = (e as { status: number }).status; }
      expect(code).toBe(3); // NOFAMILY
      insmod();
      const d = decodeAll(probe(req));
      expect(d.done).toBe(0);
      expect(d.tasks.map((t) => t.task.tgid)).toEqual(expect.arrayContaining(procPids().filter((p) => p < 100)));
    }
  });

  it('a socket holding an unfinished dump pins the module (rmmod fails with EBUSY) until it is closed', async () => {
    const many = await startTree<{ leader: number; n: number }>(['many', '200']);
    try {
      const req = request({ dump: true, show: SHOW_CRED, strategy: DUMP_SUBTREE, pid: 1 });
      // -W: after its one datagram the holder keeps the socket until we close its standard input
      const holder = spawn(TDPROBE, ['-b', '4096', '-m', '1', '-W', req.toString('hex')], { stdio: ['pipe', 'pipe', 'inherit'] });
      const exited = new Promise<void>((res) => holder.on('exit', () => res()));
      let out = '';
      let err = '';
      try {
        await new Promise<void>((res) => {
          holder.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (/^END \w+\n/m.test(out)) res(); });
          void exited.then(() => res());
        });
        expect(out).toContain('END max');
        try { rmmod(); } catch (e) { err = String((e as { stderr: Buffer }).stderr); }
      } finally {
        holder.stdin!.end();
      }
      expect(err).toMatch(/in use|busy/i);
      await exited;
      rmmod();
      insmod();
      expect(decodeAll(probe(req)).done).toBe(0);
    } finally {
      await many.stop();
    }
  });
});
