/**
 * tdcollect show <set> [--json] [--no-verify]: print an image set as a process tree, or as JSON (show-run.ts
 * does the work; this file registers the command with commander).
 */
import type { Command } from './commander.js';
import { JSON_SCHEMA_VERSION } from '../image/json.js';
import { pidViewOption } from './pid-view.js';
import { action } from './common.js';
import { runShow, type ShowCliOptions } from './show-run.js';

export { renderOrigin, renderTree, runShow, fastShow, type ShowCliOptions } from './show-run.js';

/** The options of `show`, separate so that more can be added to the command in one place. */
export function addShowOptions(cmd: Command): Command {
  return cmd
    .option('--json', `print the snapshot as JSON (schema version ${JSON_SCHEMA_VERSION}, see README)`)
    .option('--no-verify', 'tdcollect dumps: read tasks.img only; skip decoding and cross-checking the CRIU images')
    .addOption(pidViewOption());
}


export function register(program: Command): void {
  const cmd = program
    .command('show')
    .description('print an image set (a tdcollect dump, a CRIU dump directory, a checkpoint archive) as a process tree (or JSON); exits 2 on a corrupt or truncated image')
    .argument('<set>', 'image directory (tdcollect dump or CRIU dump) or checkpoint archive (.tar, .tar.gz, .tar.zst)');
  addShowOptions(cmd).action(action((path: string, opts: ShowCliOptions) => runShow(path, opts)));
}
