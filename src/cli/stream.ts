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
import type { StreamFormat } from '../stream/index.js';

/** The formats of src/stream, repeated here so that registering the options does not load msgpackr. */
const STREAM_FORMATS: readonly StreamFormat[] = ['msgpack', 'json'];

export type { StreamCliOptions } from './stream-out.js';

/** Register --stdout and --format on a command. */
export function addStreamOptions(cmd: Command): Command {
  return cmd
    .option('--stdout', 'write the snapshot to stdout as a stream of records (a header, one per task, an end record)')
    .addOption(new Option('--format <format>', 'stream format for --stdout: msgpack (consecutive MessagePack maps) or json (JSON Lines)')
      .choices([...STREAM_FORMATS]).default('msgpack'));
}

export { streamToStdout } from './stream-out.js';
