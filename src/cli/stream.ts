/**
 * `--stdout --format msgpack|json` for the commands that can stream a snapshot (dump, ps):
 *
 *   addStreamOptions(cmd);                       // registers --stdout and --format
 *   ...
 *   if (opts.stdout) { await streamToStdout(snapshot.info, snapshot.tasks, opts.format); return 0; }
 *
 * The stream (header record, one record per task, end record) is written to fd 1 with synchronous writes
 * in ~64 KiB chunks; a consumer that goes away (EPIPE) ends the stream quietly. Record schema: src/stream.
 */
import { Option, type Command } from './commander.js';
import type { DumpInfo, RecordedTask } from '../collector/task.js';
import type { StreamFormat, StreamResult } from '../stream/index.js';

/** The formats of src/stream, repeated here so that registering the options does not load msgpackr. */
const STREAM_FORMATS: readonly StreamFormat[] = ['msgpack', 'json'];

export interface StreamCliOptions {
  stdout?: boolean;
  format: StreamFormat;
}

/** Register --stdout and --format on a command. */
export function addStreamOptions(cmd: Command): Command {
  return cmd
    .option('--stdout', 'write the snapshot to stdout as a stream of records (a header, one per task, an end record)')
    .addOption(new Option('--format <format>', 'stream format for --stdout: msgpack (consecutive MessagePack maps) or json (JSON Lines)')
      .choices([...STREAM_FORMATS]).default('msgpack'));
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
