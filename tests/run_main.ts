/**
 * The CLI run inside the test process, for what it decides before any
 * network or credential is touched (help, usage errors, refused values):
 * no process to start, and every line it prints captured.
 *
 * @module
 */

import { main } from "../lib/cli.ts";

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
    err: (line) => {
      err.push(line);
      both.push(line);
    },
  });
  return { code, out: out.join("\n"), err: err.join("\n"), output: both.join("\n") };
}
