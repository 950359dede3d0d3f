import type { Freezer, FrozenTree } from './freezer.js';

/** No freeze: the snapshot is live and racy, and marked so in tasks.img. */
export const noneFreezer: Freezer = {
  method: 'none',
  async freeze(): Promise<FrozenTree> {
    return { states: new Map(), async thaw() { /* nothing to undo */ } };
  },
};
