/**
 * Clean-up on Ctrl-C and SIGTERM for commands that leave throwaway state
 * behind them: `run` and `simulate` write a PKI with every party's private
 * key (and the CA's) into a temporary folder, and the benchmark its inputs.
 * Deno's default action on these signals ends the process at once, before
 * any `finally` runs, so without this the folder stayed (review 17).
 *
 * One registry for the process: the benchmark runs `simulate` in-process,
 * so two clean-ups can be pending, and the process must exit only once both
 * are done (review 18: with a listener each, the first to finish exited
 * while the other was still removing its keys).
 *
 * @module
 */

/** The signals a terminal or a supervisor sends to stop a command, with their exit codes. */
const SIGNALS = [["SIGINT", 130], ["SIGTERM", 143]] as const;

const pending = new Set<() => Promise<void>>();
const listeners: [Deno.Signal, () => void][] = [];
/** Set once a signal came; settles never: the clean-ups end in `Deno.exit`. */
let exiting: Promise<never> | undefined;

function listen(): void {
  for (const [signal, code] of SIGNALS) {
    const listener = () => {
      if (exiting) return; // a second Ctrl-C while cleaning up changes nothing
      exiting = Promise.allSettled([...pending].map((cleanUp) => cleanUp())).then(() =>
        Deno.exit(code)
      );
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch {
      // Not a signal on this platform (SIGTERM on Windows): nothing to listen for.
    }
  }
}

function unlisten(): void {
  for (const [signal, listener] of listeners.splice(0)) {
    Deno.removeSignalListener(signal, listener);
  }
}

/**
 * Until the returned function is called, SIGINT or SIGTERM runs `cleanUp`
 * (it should kill the children and remove the folder), together with every
 * other clean-up registered here, and then exits with 128 + the signal's
 * number, as a shell reports a signalled command. Once nothing is
 * registered, the signals have their default action again.
 */
export function cleanUpOnInterrupt(cleanUp: () => Promise<void>): () => void {
  if (pending.size === 0) listen();
  const entry = () => cleanUp();
  pending.add(entry);
  return () => {
    if (!pending.delete(entry) || pending.size > 0 || exiting) return;
    unlisten();
  };
}

/**
 * `code`, unless an interrupt is being handled: then this waits for its
 * clean-ups and the exit with the signal's code. The command's own failure
 * (its children killed under it) must not exit first with another code.
 */
export async function exitCodeAfterInterrupt(code: number): Promise<number> {
  if (exiting) await exiting;
  return code;
}
