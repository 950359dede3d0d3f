/**
 * commander, loaded with require(). Imported as an ES module, Node first scans commander's CommonJS source
 * for its export names (cjs-module-lexer) and goes through the ESM loader's translators: about 10 ms more at
 * every start of a short-lived command such as `tdcollect ps`. Every command module imports commander from
 * here.
 */
import { createRequire } from 'node:module';
import type * as C from 'commander';

const commander = createRequire(import.meta.url)('commander') as typeof C;

export const Command: typeof C.Command = commander.Command;
export type Command = C.Command;
export const Option: typeof C.Option = commander.Option;
export type Option = C.Option;
export const Help: typeof C.Help = commander.Help;
export type Help = C.Help;
