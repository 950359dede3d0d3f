/**
 * Opening a source by name, or `--source auto`'s choice, apart from collect() so that commands which only
 * read tasks (ps) do not load the freezers.
 */
import { UnavailableError } from '../errors.js';
import { SMALL_TREE, SOURCES, estimateTree } from './sources/index.js';
import { pinPath, pinnedReadable } from './sources/bpf/pin.js';
import type { Probe, Source } from './sources/source.js';
import type { SourceName } from './task.js';

/** What the job is, for `--source auto`'s choice: one subtree (root) or every task (root undefined). */
export interface SourceHint {
  root?: number;
  /** the most processes procfs is chosen for (default SMALL_TREE) */
  smallTree?: number;
}

/**
 * `--source auto`'s candidates for this job, cheapest first, each with why: a pinned BPF iterator this user can
 * read (no load); the TASKDIAG family; procfs for a small tree (estimateTree: loading the iterator would cost
 * more than reading /proc); loading the BPF iterator; procfs. Sources whose probe fails are left out and their
 * reasons pushed to `unavailable`. Probed as they are reached, so that a caller that stops at the first
 * candidate pays no later probe (the bpf probe loads libbpf: 7-11 ms).
 */
async function* candidates(hint: SourceHint, unavailable: string[]): AsyncGenerator<{ name: SourceName; reason: string }> {
  const probes = new Map<SourceName, Probe>();
  const ok = async (n: SourceName): Promise<boolean> => {
    let p = probes.get(n);
    if (!p) {
      const f = SOURCES[n];
      p = f ? await f.probe() : { ok: false, reason: 'not built into this tdcollect' };
      probes.set(n, p);
      if (!p.ok) unavailable.push(`${n}: ${p.reason}`);
    }
    return p.ok;
  };
  const pinned = pinPath();
  if (SOURCES.bpf && pinnedReadable(pinned)) yield { name: 'bpf', reason: `a pinned BPF iterator is readable at ${pinned} (no load)` };
  if (await ok('taskdiag')) yield { name: 'taskdiag', reason: 'the TASKDIAG family is there (one netlink dump)' };
  const limit = hint.smallTree ?? SMALL_TREE;
  const size = estimateTree(hint.root, limit);
  const all = hint.root === undefined;
  if (size?.small && (await ok('procfs'))) {
    yield { name: 'procfs', reason: `${all ? `${size.processes} tasks in all` : `a tree of ${size.processes} process${size.processes === 1 ? '' : 'es'}`} (at most ${limit}): reading /proc costs less than loading the BPF iterator` };
  }
  if (await ok('bpf')) {
    const what = !size ? 'a tree of unknown size' : all ? `${size.processes} tasks in all` : `a tree of more than ${limit} processes`;
    yield { name: 'bpf', reason: `${what}: loading the BPF iterator costs less than reading /proc` };
  }
  if (await ok('procfs')) yield { name: 'procfs', reason: 'no faster source works here' };
}

/** Every candidate of `--source auto` for this job (see candidates()), every source probed. */
export async function planAuto(hint: SourceHint = {}): Promise<{ plan: { name: SourceName; reason: string }[]; unavailable: string[] }> {
  const plan: { name: SourceName; reason: string }[] = [];
  const unavailable: string[] = [];
  for await (const c of candidates(hint, unavailable)) plan.push(c);
  return { plan, unavailable };
}

/**
 * Open the named source, or for 'auto' the first of planAuto's candidates that opens; its autoReason says
 * which and why.
 */
export async function openSource(name: SourceName | 'auto' = 'auto', hint: SourceHint = {}): Promise<Source> {
  if (name !== 'auto') {
    const f = SOURCES[name];
    if (!f) throw new UnavailableError(name, `source ${name} is not built into this tdcollect`);
    return f.open();
  }
  // the candidates in turn, each probed only when the ones before it did not open
  const unavailable: string[] = [];
  const failed: string[] = [];
  for await (const c of candidates(hint, unavailable)) {
    try {
      const s = await SOURCES[c.name]!.open();
      s.autoReason = c.reason;
      return s;
    } catch (e) {
      failed.push(`${c.name}: ${(e as Error).message}`);
    }
  }
  throw new UnavailableError('source', `no source works here (${[...unavailable, ...failed].join('; ')})`);
}
