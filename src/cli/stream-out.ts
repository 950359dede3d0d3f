/**
 * The --stdout output of a command, apart from the registration of its options (stream.ts): a command run
 * without commander (the dump's fast path, main.ts) writes its stream through this.
 */
import type { DumpInfo, RecordedTask } from '../collector/task.js';
import type { StreamFormat, StreamResult } from '../stream/index.js';

export interface StreamCliOptions {
  stdout?: boolean;
  format: StreamFormat;
}

/** Write a snapshot (or a task list with what is known of the header) to stdout as a stream. */
export async function streamToStdout(
  info: Partial<DumpInfo>,
  tasks: Iterable<RecordedTask> | AsyncIterable<RecordedTask>,
  format: StreamFormat = 'msgpack',
): Promise<StreamResult> {
  const { streamSnapshot } = await import('../stream/index.js');
  return streamSnapshot(1, info, tasks, format);
}
