/**
 * The CLI run inside the test process, for what it decides before any
 * network or credential is touched (help, usage errors, refused values):
 * no process to start, and every line it prints captured.
 *
 * @module
 */

import { main } from "../lib/cli.ts";
import { unstamped } from "../lib/log.ts";

/** What `main` returned and printed: stdout, stderr, and both in the order printed. */
export interface MainOutcome {
  code: number;
  out: string;
  err: string;
  output: string;
}

/** Runs `sumshare ARGS` in this process and captures its output. */
export async function runMain(args: string[]): Promise<MainOutcome> {
  const out: string[] = [];
  const err: string[] = [];
  const both: string[] = [];
  const code = await main(args, {
    out: (line) => {
      out.push(line);
      both.push(line);
    },
    // Log lines come stamped with the time; the tests compare what follows the stamp.
    err: (line) => {
      err.push(unstamped(line));
      both.push(unstamped(line));
    },
  });
  return { code, out: out.join("\n"), err: err.join("\n"), output: both.join("\n") };
}
