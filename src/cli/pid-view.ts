/** --pid-view, shared by show and diff: which pid view of a tree dumped from outside its pid namespace. */
import { Option } from './commander.js';
import { PID_VIEWS } from '../image/view.js';

export function pidViewOption(): Option {
  return new Option('--pid-view <view>', 'pids of a tree dumped from outside its pid namespace: as that namespace ' +
    'sees them (root, as CRIU writes them) or as the collector saw them (collector)')
    .choices([...PID_VIEWS]).default('root');
}

/** The manual's paragraph on --pid-view. */
export const PID_VIEW_TEXT =
  '--pid-view root|collector: a tree whose root lived in another pid namespace (a container) is recorded with ' +
  'the pids that namespace sees, as CRIU writes them, and tasks.img also keeps the pids the collector saw. ' +
  'root (the default) shows and compares the first, collector the second. A set with one view only (a tree ' +
  'in the collector\'s own namespace, a CRIU image set) is the same in both.';
