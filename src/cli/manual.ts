/**
 * Help text in man-page order, from one source per command.
 *
 * A command attaches a ManualPage to its commander Command with `manual(cmd, page)`. The OPTIONS section is
 * generated from the options and arguments the command registered with commander (so flags are written
 * once); the page adds NAME, SYNOPSIS, DESCRIPTION, EXIT STATUS and EXAMPLES. The same page feeds:
 *   - `tdcollect CMD --help` and `tdcollect help CMD` (commander calls the formatHelp installed here),
 *   - renderManual(cmd, { markdown: true }) / manualMarkdown(program) for the README and docs.
 *
 *   export function register(program: Command): void {
 *     const cmd = program.command('show').argument('<dir>', 'image directory').option(...).action(...);
 *     manual(cmd, { summary: 'print a snapshot', description: ['...'], exitStatus: [...], examples: [...] });
 *   }
 */
import { Command, Help } from './commander.js';

export interface ManualPage {
  /** NAME: "tdcollect-CMD - summary" (default: the commander description) */
  summary?: string;
  /** SYNOPSIS lines (default: "tdcollect " + commander's usage line) */
  synopsis?: string[];
  /** DESCRIPTION paragraphs */
  description: string[];
  /** EXIT STATUS: [code, meaning] */
  exitStatus: [number, string][];
  /** EXAMPLES: [command line, what it does] */
  examples: [string, string][];
  /** SEE ALSO entries (e.g. "tdcollect-dump(1)") */
  seeAlso?: string[];
}

const PAGES = new WeakMap<Command, ManualPage>();

/** Attach a manual page to a command; its --help and `help CMD` print it. Returns the command. */
export function manual(cmd: Command, page: ManualPage): Command {
  PAGES.set(cmd, page);
  if (page.summary && !cmd.description()) cmd.description(page.summary);
  cmd.configureHelp({
    formatHelp: (c: Command, helper: Help) => renderManual(c, { helper, width: helpWidth() }),
  });
  return cmd;
}

/** The page attached to a command, if any. */
export function manualPage(cmd: Command): ManualPage | undefined {
  return PAGES.get(cmd);
}

function helpWidth(): number {
  const cols = process.stdout.isTTY ? process.stdout.columns : undefined;
  return Math.max(40, Math.min(cols ?? 80, 100));
}

/** Greedy word wrap of one paragraph to `width` columns, each line prefixed by `indent`. */
export function wrap(text: string, width: number, indent: string): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (word === '') continue;
    if (line && indent.length + line.length + 1 + word.length > width) {
      out.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(indent + line);
  return out;
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export interface RenderOptions {
  helper?: Help;
  width?: number;
  /** Markdown (for README/docs) instead of terminal text */
  markdown?: boolean;
}

/** Render a command's page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, EXAMPLES, SEE ALSO. */
export function renderManual(cmd: Command, opts: RenderOptions = {}): string {
  const helper = opts.helper ?? cmd.createHelp();
  const width = opts.width ?? 80;
  const md = !!opts.markdown;
  const page = PAGES.get(cmd) ?? { description: [], exitStatus: [], examples: [] };
  const name = fullName(cmd);
  const summary = page.summary ?? cmd.description();
  // commander's usage line already names the parent commands: "tdcollect diff [options] <A> [B]"
  const synopsis = page.synopsis ?? [helper.commandUsage(cmd)];
  const out: string[] = [];
  const section = (title: string) => {
    if (out.length && out[out.length - 1] !== '') out.push('');
    out.push(md ? `#### ${title}` : title);
    if (md) out.push('');
  };
  const para = (text: string) => {
    if (md) { out.push(text, ''); return; }
    out.push(...wrap(text, width, '    '));
    out.push('');
  };
  const term = (t: string, desc: string) => {
    if (md) { out.push(`- \`${t}\`${desc ? ` — ${desc}` : ''}`); return; }
    const lines = desc ? wrap(desc, width, '        ') : [];
    // a short term (an exit code) shares its line with the description, as man pages do
    if (t.length <= 3 && lines.length) lines[0] = `    ${t.padEnd(4)}${lines[0].slice(8)}`;
    else lines.unshift(`    ${t}`);
    out.push(...lines);
  };
  const trim = () => { while (out.length && out[out.length - 1] === '') out.pop(); };

  if (md) out.push(`### ${name}`, '');
  section('NAME');
  if (md) out.push(`${name.replace(/ /g, '-')} — ${summary}`);
  else out.push(...wrap(`${name.replace(/ /g, '-')} - ${summary}`, width, '    '));
  section('SYNOPSIS');
  if (md) out.push('```', ...synopsis, '```');
  else for (const s of synopsis) out.push(`    ${s}`);
  if (page.description.length) {
    section('DESCRIPTION');
    for (const p of page.description) para(p);
    trim();
  }
  const args = helper.visibleArguments(cmd);
  const options = helper.visibleOptions(cmd);
  const subs = helper.visibleCommands(cmd);
  if (args.length || options.length) {
    section('OPTIONS');
    for (const a of args) term(helper.argumentTerm(a), helper.argumentDescription(a));
    for (const o of options) term(helper.optionTerm(o), helper.optionDescription(o));
  }
  if (subs.length) {
    section('COMMANDS');
    for (const s of subs) term(helper.subcommandTerm(s), s.description());
  }
  if (page.exitStatus.length) {
    section('EXIT STATUS');
    for (const [code, meaning] of page.exitStatus) term(String(code), meaning);
  }
  if (page.examples.length) {
    section('EXAMPLES');
    for (const [line, what] of page.examples) {
      if (md) out.push(`${what}:`, '', '```', line, '```', '');
      else { out.push(...wrap(what, width, '    ')); out.push(`        $ ${line}`, ''); }
    }
    trim();
  }
  if (page.seeAlso?.length) {
    section('SEE ALSO');
    out.push(md ? page.seeAlso.join(', ') : `    ${page.seeAlso.join(', ')}`);
  }
  return out.join('\n') + '\n';
}

/** Markdown for every command of a program that has a manual page, in registration order. */
export function manualMarkdown(program: Command): string {
  const parts: string[] = [];
  for (const c of program.commands) if (PAGES.has(c)) parts.push(renderManual(c, { markdown: true }));
  return parts.join('\n');
}
