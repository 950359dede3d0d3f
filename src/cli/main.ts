/**
 * The tdcollect command line: one file per command, each exporting register(program). Only the module of
 * the command being run is loaded (a `tdcollect ps` does not pay for the image codecs); `--help` and
 * unknown commands load them all.
 */
import type { Command } from './commander.js';
import { VERSION } from '../version.js';
import { EXIT } from '../errors.js';

type Register = (program: Command) => void;
/** Command name -> its module (loaded when the command runs). */
export type Commands = Record<string, () => Promise<{ register: Register }>>;

/**
 * A command's fast path: its options parsed without commander for the common forms (a function to run
 * them), undefined for anything else, which commander then parses.
 */
export type FastPaths = Record<string, () => Promise<{ fast(args: readonly string[]): (() => Promise<void>) | undefined }>>;

/** The commands with a fast path (the dump, and show: the commands whose start-up matters most). */
export const FAST: FastPaths = {
  dump: () => import('./dump-fast.js'),
  show: () => import('./show-fast.js'),
};

/** Every command, by name, in the order help lists them. A new command is one file plus one line here. */
export const COMMANDS: Commands = {
  dump: () => import('./dump.js'),
  show: () => import('./show.js'),
  diff: () => import('./diff.js'),
  ps: () => import('./ps.js'),
  check: () => import('./check.js'),
  thaw: () => import('./thaw.js'),
  bpf: () => import('./bpf.js'),
};

async function baseProgram(): Promise<Command> {
  // commander is loaded here, not when this module is: a command run on its fast path never loads it
  const { Command } = await import('./commander.js');
  return new Command()
    .name('tdcollect')
    .description('freeze a Linux process tree, collect every task in few kernel round trips, write CRIU-format images')
    .version(VERSION)
    .showHelpAfterError(false)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `tdcollect: ${s}` : s),
    })
    .exitOverride();
}

/** The program with the named commands registered (all of them by default). */
export async function buildProgram(only?: readonly string[], commands: Commands = COMMANDS): Promise<Command> {
  const program = await baseProgram();
  const { manual, manualPage } = await import('./manual.js');
  const { PAGES } = await import('./pages.js');
  for (const name of only ?? Object.keys(commands)) {
    (await commands[name]()).register(program);
    const cmd = program.commands.find((c) => c.name() === name);
    if (cmd && !manualPage(cmd) && PAGES[name]) manual(cmd, PAGES[name]);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  return run(argv, COMMANDS, FAST);
}

/**
 * Run the command line over `commands` (every command in COMMANDS's order; the CLI bundle of one command
 * passes that command alone, scripts/build-cli.mjs).
 */
export async function run(argv: string[], commands: Commands, fast: FastPaths = {}): Promise<void> {
  const first = argv[2];
  if (first !== undefined && Object.hasOwn(fast, first)) {
    const go = (await fast[first]()).fast(argv.slice(3));
    if (go) return go();
  }
  let only: string[] | undefined;
  if (first !== undefined && Object.hasOwn(commands, first)) only = [first];
  else if (first === 'help' && argv[3] !== undefined && Object.hasOwn(commands, argv[3])) only = [argv[3]];
  else if (first === '-V' || first === '--version') only = [];
  const program = await buildProgram(only, commands);
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
