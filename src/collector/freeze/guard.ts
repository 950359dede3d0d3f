/**
 * Never leave a tree frozen: while a freeze is held, SIGINT, SIGTERM and SIGHUP thaw it synchronously and
 * then take their default action (the process dies of the signal, exit status 128+sig), and process 'exit'
 * thaws it too. SIGKILL cannot be caught: ptrace tracees are released by the kernel when the tracer dies,
 * and a cgroup freeze is recorded in a state file that `tdcollect thaw` (and the next run) undoes.
 */

export type ThawSync = () => void;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface Guard {
  /** Remove the handlers (after a normal thaw). */
  release(): void;
}

/** Install handlers that call thaw() (synchronously, once) if the process is interrupted or exits. */
export function guardFreeze(thaw: ThawSync): Guard {
  let active = true;
  const runThaw = (): void => {
    if (!active) return;
    active = false;
    remove();
    try {
      thaw();
    } catch (e) {
      process.stderr.write(`tdcollect: thaw failed: ${(e as Error).message}\n`);
    }
  };
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of SIGNALS) {
    const h = (): void => {
      runThaw();
      // take the default action now that the tree is released, unless someone else handles the signal
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
  const onExit = (): void => runThaw();
  process.on('exit', onExit);
  function remove(): void {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    process.removeListener('exit', onExit);
  }
  return {
    release(): void {
      if (!active) return;
      active = false;
      remove();
    },
  };
}
