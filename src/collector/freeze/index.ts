import type { FreezeMethod } from '../task.js';
import type { Freezer } from './freezer.js';
import { noneFreezer } from './none.js';
import { ptraceFreezer } from './ptrace.js';
import { cgroupFreezer } from './cgroup.js';

export type { Freezer, FrozenTree, FreezeOptions, PreReadTask } from './freezer.js';

/** Every freezer, by method. A new freezer is one file plus one line here. */
export const FREEZERS: Partial<Record<FreezeMethod, Freezer>> = {
  none: noneFreezer,
  ptrace: ptraceFreezer,
  cgroup: cgroupFreezer,
};
