/**
 * Namespace identities compared as a partition. Inode numbers name a namespace only on one machine and one
 * boot, and CRIU's ids-PID.img numbers namespaces in its own id space, so two snapshots are compared by
 * which tasks share a namespace, never by the raw numbers: for each kind, a namespace on side A is paired
 * with the namespace on side B that most of its tasks are in (and the other way round); a task whose
 * namespace on B is not the partner of its namespace on A moved. A whole tree moved together into another
 * namespace is therefore not a difference; one task that left its siblings' namespace is.
 *
 * O(pairs) per kind with Maps; ties go to the first pair seen (pstree order), so the result is deterministic.
 */
import { NS_KINDS, type NsKind, type RecordedTask as Task } from '../collector/task.js';

export interface NsMove {
  kind: NsKind;
  /** the namespace ids as each side records them */
  old: number;
  new: number;
}

/** The field name a namespace kind is reported and ignored under: "ns.net". */
export const nsField = (k: NsKind): string => `ns.${k}`;

/**
 * For matched pairs [taskA, taskB], the namespace moves of each pair (by index into `pairs`), and the kinds
 * that one side did not record for some pair (not compared there).
 */
export function namespaceMoves(
  pairs: readonly (readonly [Task, Task])[], ignore: ReadonlySet<string>,
): { moves: Map<number, NsMove[]>; notCompared: Set<string> } {
  const moves = new Map<number, NsMove[]>();
  const notCompared = new Set<string>();
  for (const kind of NS_KINDS) {
    if (ignore.has(nsField(kind))) continue;
    const idx: number[] = [];
    for (let i = 0; i < pairs.length; i++) {
      const a = pairs[i][0].ns?.[kind], b = pairs[i][1].ns?.[kind];
      if (a === undefined && b === undefined) continue;
      if (a === undefined || b === undefined) { notCompared.add(nsField(kind)); continue; }
      idx.push(i);
    }
    if (!idx.length) continue;
    // how many tasks go from namespace a to namespace b
    const count = new Map<string, number>();
    for (const i of idx) {
      const key = `${pairs[i][0].ns![kind]}:${pairs[i][1].ns![kind]}`;
      count.set(key, (count.get(key) ?? 0) + 1);
    }
    const image = new Map<number, [number, number]>(); // a -> [b, count]
    const preimage = new Map<number, [number, number]>(); // b -> [a, count]
    for (const i of idx) {
      const a = pairs[i][0].ns![kind]!, b = pairs[i][1].ns![kind]!;
      const n = count.get(`${a}:${b}`)!;
      const im = image.get(a);
      if (!im || n > im[1]) image.set(a, [b, n]);
      const pre = preimage.get(b);
      if (!pre || n > pre[1]) preimage.set(b, [a, n]);
    }
    for (const i of idx) {
      const a = pairs[i][0].ns![kind]!, b = pairs[i][1].ns![kind]!;
      if (image.get(a)![0] === b && preimage.get(b)![0] === a) continue;
      let list = moves.get(i);
      if (!list) moves.set(i, (list = []));
      list.push({ kind, old: a, new: b });
    }
  }
  return { moves, notCompared };
}
