/**
 * This process's effective capabilities, read once from /proc/self/status (CapEff) through ProcFile: what
 * `check` reports and what the bpf source needs to load its program.
 */
import { ProcFile } from './procfile.js';
import type { Mask64 } from './task.js';

/** CapEff as [bits 0-31, bits 32-63]; [0, 0] when /proc/self/status cannot be read or has no CapEff line. */
export function effectiveCaps(): Mask64 {
  const f = new ProcFile(4096);
  try {
    if (f.read('/proc/self/status') <= 0) return [0, 0];
  } catch {
    return [0, 0];
  }
  return f.keyMask64('CapEff') ?? [0, 0];
}

/** Whether capability `bit` (capability.h's number) is in the set. */
export function hasCap(caps: Mask64, bit: number): boolean {
  return ((bit < 32 ? caps[0] >>> bit : caps[1] >>> (bit - 32)) & 1) === 1;
}
