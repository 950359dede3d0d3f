/**
 * The TASKDIAG source's quick answer, apart from its module: whether this kernel certainly has no TASKDIAG
 * family (genl.familyMissing: one request on a bare socket). `--source auto` asks this first, and loads the
 * source's netlink client only for a kernel that may have the family.
 */
import { familyMissing } from '../../netlink/genl.js';
import { TASKDIAG_GENL_NAME } from '../../netlink/taskdiag.js';
import type { Probe } from './source.js';

export const TASKDIAG_HINT =
  'load the provider module from kernel/ (insmod kernel/task_diag/task_diag.ko) or use --source bpf|procfs';

/** The probe's answer for a kernel without the TASKDIAG family. */
export const TASKDIAG_MISSING: Probe = Object.freeze({
  ok: false, reason: `no TASKDIAG generic-netlink family in this kernel; ${TASKDIAG_HINT}`,
});

/** TASKDIAG_MISSING when the kernel has no TASKDIAG family; undefined when it may have one (or cannot tell). */
export function taskdiagMissing(): Probe | undefined {
  try {
    if (familyMissing(TASKDIAG_GENL_NAME)) return TASKDIAG_MISSING;
  } catch { /* the full probe says what is wrong */ }
  return undefined;
}
