/**
 * show's fast path (main.ts FAST): its arguments read by fastShow, and the show run as commander would run
 * it (action: one line and the exit code for an error), without loading commander.
 */
import { action } from './common.js';
import { fastShow, runShow } from './show-run.js';

export function fast(args: readonly string[]): (() => Promise<void>) | undefined {
  const parsed = fastShow(args);
  return parsed ? () => action(runShow)(parsed.path, parsed.opts) : undefined;
}
