/** The tdcollect command line: one file per command, each exporting register(program). */
import { Command } from 'commander';
import { VERSION } from '../version.js';
import { EXIT } from '../errors.js';
import { register as registerCheck } from './check.js';
import { register as registerDump } from './dump.js';
import { register as registerDiff } from './diff.js';
import { register as registerPs } from './ps.js';
import { register as registerBpf } from './bpf.js';
import { register as registerShow } from './show.js';
import { register as registerThaw } from './thaw.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tdcollect')
    .description('freeze a Linux process tree, collect every task in few kernel round trips, write CRIU-format images')
    .version(VERSION)
    .showHelpAfterError(false)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `tdcollect: ${s}` : s),
    })
    .exitOverride();
  registerDump(program);
  registerCheck(program);
  registerDiff(program);
  registerPs(program);
  registerBpf(program);
  registerShow(program);
  registerThaw(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' || ce.code === 'commander.help') {
      process.exitCode = EXIT.OK;
      return;
    }
    // commander has already printed its one line
    process.exitCode = EXIT.USAGE;
  }
}
