/**
 * The simulation's hospital process: the real `sumshare hospital` command
 * (the same `main` that main.ts runs), followed by one line on stderr with
 * the CPU time and peak memory the process used, which the hospital's own
 * report does not carry yet:
 *
 *     resources {"cpuMs":…,"servingCpuMs":…,"peakRssBytes":…}
 *
 * `servingCpuMs` counts from the moment it listens (TLS handshakes and the
 * round, not Deno's start-up). Once `sumshare hospital --json` reports these
 * itself, the simulator can start main.ts instead and read them from the JSON.
 *
 * @module
 */

import process from "node:process";
import { main } from "../cli.ts";
import { samplePeakRss, trackPeakRss } from "../memory.ts";
import { unstamped } from "../log.ts";

function cpuMs(since?: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1000;
}

if (import.meta.main) {
  // Sampled: getrusage's maximum would include the parent's memory at the fork.
  trackPeakRss();
  let listening: NodeJS.CpuUsage | undefined;
  const io = {
    out: (line: string) => console.log(line),
    err: (line: string) => {
      if (listening === undefined && unstamped(line).startsWith("listening on ")) {
        listening = process.cpuUsage();
      }
      console.error(line);
    },
  };
  const code = await main(Deno.args, io);
  const resources = {
    cpuMs: cpuMs(),
    servingCpuMs: listening === undefined ? null : cpuMs(listening),
    peakRssBytes: samplePeakRss(),
  };
  console.error(`resources ${JSON.stringify(resources)}`);
  Deno.exit(code);
}
