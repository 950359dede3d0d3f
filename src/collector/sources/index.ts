import type { SourceName } from '../task.js';
import type { SourceFactory } from './source.js';
import { procfsFactory } from './procfs.js';

export type { Source, SourceFactory, SourceStats, Probe } from './source.js';

/** Every source, by name. A new source is one file plus one line here. */
export const SOURCES: Partial<Record<SourceName, SourceFactory>> = {
  procfs: procfsFactory,
};

/** The order `--source auto` tries them in: fewest round trips first, procfs as the universal fallback. */
export const AUTO_ORDER: readonly SourceName[] = ['taskdiag', 'bpf', 'procfs'];
