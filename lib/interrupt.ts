/**
 * Clean-up on Ctrl-C and SIGTERM for commands that leave throwaway state
 * behind them: `run` and `simulate` write a PKI with every party's private
 * key (and the CA's) into a temporary folder, and the benchmark its inputs.
 * Deno's default action on these signals ends the process at once, before
 * any `finally` runs, so without this the folder stayed (review 17).
 *
 * @module
 */

/** The signals a terminal or a supervisor sends to stop a command, with their exit codes. */
const SIGNALS = [["SIGINT", 130], ["SIGTERM", 143]] as const;

/**
 * Until the returned function is called, SIGINT or SIGTERM runs `cleanUp`
 * once (it should kill the children and remove the folder) and then exits
 * with 128 + the signal's number, as a shell reports a signalled command.
 */
export function cleanUpOnInterrupt(cleanUp: () => Promise<void>): () => void {
  let started = false;
  const listeners: [Deno.Signal, () => void][] = [];
  for (const [signal, code] of SIGNALS) {
    const listener = () => {
      if (started) return;
      started = true;
      cleanUp().catch(() => {}).finally(() => Deno.exit(code));
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch {
      // Not a signal on this platform (SIGTERM on Windows): nothing to listen for.
    }
  }
  return () => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  };
}
