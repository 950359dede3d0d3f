/**
 * uname(2)'s release and nodename, as os.release() and os.hostname() give them, read from /proc/sys/kernel/
 * (the reader's UTS namespace, as uname's), so that a command does not load node:os for two strings.
 */
import { readFileSync } from 'node:fs';

function line(path: string): string {
  const s = readFileSync(path, 'utf8');
  return s.endsWith('\n') ? s.slice(0, -1) : s;
}

export function kernelRelease(): string {
  return line('/proc/sys/kernel/osrelease');
}

export function hostName(): string {
  return line('/proc/sys/kernel/hostname');
}
