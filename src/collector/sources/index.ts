import type { SourceName } from '../task.js';
import type { SourceFactory } from './source.js';
import { procfsFactory } from './procfs.js';
import { bpfFactory } from './bpf/bpf.js';
import { taskdiagFactory } from './taskdiag.js';

export type { Source, SourceFactory, SourceStats, Probe, TreeOptions } from './source.js';

/** Every source, by name. A new source is one file plus one line here. */
export const SOURCES: Partial<Record<SourceName, SourceFactory>> = {
  procfs: procfsFactory,
  bpf: bpfFactory,
  taskdiag: taskdiagFactory,
};

/** The order `--source auto` tries them in: fewest round trips first, procfs as the universal fallback. */
export const AUTO_ORDER: readonly SourceName[] = ['taskdiag', 'bpf', 'procfs'];
