/**
 * `sumshare simulate`: a round of many peers on this machine, its timeline,
 * and whether the secure result equals the plaintext over the survivors.
 * Run on its own with `deno run … lib/simulate/main.ts --peers N …`, or as
 * `sumshare simulate` once lib/cli.ts dispatches to {@linkcode simulateCommand}.
 *
 * @module
 */

import { describeError, isExpectedError, UsageError } from "../errors.ts";
import { parseSimulateOptions, SIMULATE_HELP } from "./options.ts";
import { simulate, type SimulationReport } from "./run.ts";

/** Where the command writes. */
export interface SimulateConsole {
  out(line: string): void;
  err(line: string): void;
}

const SYSTEM_CONSOLE: SimulateConsole = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

const MiB = 1024 * 1024;

/** One statistic for people: long arrays shortened. */
function show(value: unknown): string {
  if (Array.isArray(value) && value.length > 12) {
    return `[${value.slice(0, 8).join(", ")}, … ${value.length - 8} more]`;
  }
  return Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
}

function showResult(result: Record<string, unknown>): string {
  return Object.entries(result).map(([k, v]) => `${k} ${show(v)}`).join(", ");
}

function megabytes(bytes: number | null): string {
  return bytes === null ? "not reported" : `${(bytes / MiB).toFixed(1)} MiB`;
}

/** The report as lines for people. */
export function formatReport(r: SimulationReport): string[] {
  const drops = Object.entries(r.dropouts.byPhase).map(([p, n]) => `${n} at ${p}`).join(", ");
  const lines = [
    `${r.peers} peers in ${r.workers} workers, ${r.mode}${
      r.mode === "threshold" ? ` T=${r.threshold}` : ""
    }${r.graph === "sparse" ? " per neighbourhood" : ""}, ${r.graph} graph (${r.neighbors} ` +
    `neighbours each), query ${r.query}, seed ${r.seed}`,
    `dropouts: ${r.dropouts.count}${drops ? ` (${drops})` : ""}; phase deadlines ${
      (r.phaseTimeoutMs / 1000).toFixed(0)
    } s`,
    `setup: PKI ${r.setup.pkiMs} ms, hospital up ${r.setup.hospitalStartMs} ms, ` +
    `peer credentials loaded in ${r.setup.identitiesMs} ms`,
    "timeline (each phase until the last peer connected, sent its answer, or finished):",
    ...Object.entries(r.phases).map(([phase, ms]) =>
      `  ${phase.padEnd(12)} ${ms.toFixed(0).padStart(8)} ms`
    ),
    `START→result (the hospital's own clock): ${r.startToResultMs.toFixed(0)} ms; ` +
    `workers start to last peer done: ${r.wallMs} ms`,
    `bytes through the hospital: ${(r.bytes / MiB).toFixed(2)} MiB; ` +
    `per peer: ${(r.bytesPerPeer / 1024).toFixed(1)} KiB`,
    `CPU: hospital ${
      r.hospitalCpuMs === null ? "not reported" : `${r.hospitalCpuMs.toFixed(0)} ms`
    }, ` +
    `per peer ${r.peerCpuMs.toFixed(1)} ms (the workers' CPU during the round over the peers)`,
    `peak memory: hospital ${megabytes(r.hospitalPeakRss)}, largest worker ${
      megabytes(r.workerPeakRss)
    }`,
    `result:    ${showResult(r.result)}`,
    `plaintext: ${showResult(r.plaintext)} (over the ${r.survivors} survivors)`,
    `survivors: ${r.survivors} (expected ${r.expectedSurvivors})`,
    `match: ${r.match ? "yes" : "NO: the secure result differs from the plaintext"}`,
  ];
  if (!r.asPlanned) {
    lines.push("NOT AS PLANNED: the survivors or the dropouts are not the ones asked for");
    for (const u of r.unexpected) {
      lines.push(`  ${u.name}: ${u.status}${u.reason ? `: ${u.reason}` : ""}`);
    }
  }
  return lines;
}

/**
 * Runs `sumshare simulate` with `args` and returns the exit code: 0 only
 * when the result matches the plaintext over exactly the expected survivors,
 * 1 when it does not or the round failed, 2 for a usage error.
 */
export async function simulateCommand(
  args: string[],
  io: SimulateConsole = SYSTEM_CONSOLE,
): Promise<number> {
  let options;
  try {
    options = parseSimulateOptions(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`sumshare: ${error.message}`);
    io.err("Try 'sumshare simulate --help'.");
    return 2;
  }
  if (options === "help") {
    io.out(SIMULATE_HELP);
    return 0;
  }
  let report: SimulationReport;
  try {
    report = await simulate(options, (line) => io.err(line));
  } catch (error) {
    io.err(
      `sumshare simulate: ${
        isExpectedError(error)
          ? describeError(error)
          : `unexpected error (a bug): ${error instanceof Error ? error.stack : error}`
      }`,
    );
    return 1;
  }
  if (options.json) io.out(JSON.stringify(report));
  else for (const line of formatReport(report)) io.out(line);
  return report.match && report.asPlanned ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await simulateCommand(Deno.args));
}
