/**
 * Where the pinned BPF iterator is, apart from the iterator's code: `--source auto` looks for a pin before it
 * decides anything, and a command that finds none does not load (or initialise) the BPF source.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { BPFFS } from '../../../sys/bpfiter.js';
import { RECORD_VERSION } from './record.js';

/**
 * Default pin location (a pin of another record layout is another file); TDCOLLECT_BPF_PIN overrides it, and
 * TDCOLLECT_BPF_PIN=none disables pinned use.
 */
export const DEFAULT_PIN_PATH = `${BPFFS}/tdcollect/tasks-v${RECORD_VERSION}`;

export function pinPath(): string | undefined {
  const env = process.env.TDCOLLECT_BPF_PIN;
  if (env === 'none' || env === '') return undefined;
  return env ?? DEFAULT_PIN_PATH;
}

/** Whether a pinned iterator is there and this process may read it. */
export function pinnedReadable(path: string | undefined): boolean {
  if (!path) return false;
  try {
    accessSync(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}
