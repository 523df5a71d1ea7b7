/**
 * One simulated round: a throwaway PKI in a private temporary folder, the
 * hospital as its own process (the real `sumshare hospital` command), the
 * peers spread over worker processes (worker.ts), and the outcome checked
 * against the plaintext over the peers that should have survived.
 *
 * Phase deadlines scale with the work: every peer checks every other peer's
 * certificate and signatures and agrees a key with each (N² operations over
 * the machine's cores), and expands a mask per pair (N² × D elements), so
 * that on a crowded machine the only dropouts are the ones asked for.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RoundAbortedError } from "../errors.ts";
import { parseHostPort } from "../names.ts";
import { createConsortium, writeConsortium } from "../pki.ts";
import { dimension } from "../query.ts";
import { cleanUpOnInterrupt } from "../interrupt.ts";
import { Child } from "./child.ts";
import { MAX_ROWS, plaintextResult, plaintextTotals, resultMatches, VALUE_LIMIT } from "./data.ts";
import type { SimulateOptions } from "./options.ts";
import { checkPlan, dropoutPlan, type Phase, PHASE_MESSAGES, PHASES, phasesOf } from "./plan.ts";
import type { EventSpan, WorkerConfig, WorkerReport } from "./worker.ts";

/** What a simulation measured and concluded. */
export interface SimulationReport {
  peers: number;
  workers: number;
  seed: number;
  query: string;
  mode: "n-of-n" | "threshold";
  threshold: number;
  /** Pairing graph: each peer's neighbours (the complete graph: N − 1; sparse: K). */
  graph: "complete" | "sparse";
  neighbors: number;
  dropouts: { count: number; byPhase: Partial<Record<Phase, number>> };
  /** The peers whose inputs the hospital summed. */
  survivors: number;
  expectedSurvivors: number;
  /** The hospital's result equals the plaintext over the peers it summed. */
  match: boolean;
  /** It summed exactly the expected survivors, and every peer ended as planned. */
  asPlanned: boolean;
  result: Record<string, unknown>;
  plaintext: Record<string, unknown>;
  /** The hospital's own measurement, START to result. */
  startToResultMs: number;
  /** Workers started to the last peer's end. */
  wallMs: number;
  /** Time per phase: until the last peer connected, sent its answer, or finished. */
  phases: Record<string, number>;
  /** Frame bytes through the hospital, both directions. */
  bytes: number;
  /** Frame bytes per peer that finished (sent and received), the mean. */
  bytesPerPeer: number;
  /** The hospital's CPU from listening to its result (TLS handshakes and the round). */
  hospitalCpuMs: number | null;
  hospitalPeakRss: number | null;
  /** Workers' CPU during the round, divided by the peers they ran. */
  peerCpuMs: number;
  workerPeakRss: number;
  setup: { pkiMs: number; identitiesMs: number; hospitalStartMs: number };
  phaseTimeoutMs: number;
  /** Peers that did not end as planned (at most ten), with why. */
  unexpected: { name: string; status: string; reason?: string | undefined }[];
}

const ROOT = dirname(fileURLToPath(new URL("../../main.ts", import.meta.url)));

/** How a child of the simulator runs Deno on one of its entry modules. */
function denoCommand(entry: string, dir: string, profile?: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    ...(profile ?? []),
    "--config",
    join(ROOT, "deno.json"),
    "--allow-net=127.0.0.1",
    `--allow-read=${dir}`,
    "--v8-flags=--expose-gc", // see garbage.ts: frees Web Crypto's buffers promptly
    fileURLToPath(new URL(entry, import.meta.url)),
  ];
}

/**
 * Each phase's deadline: 30 s, plus per peer 20 ms of setup, plus the
 * round's N·K certificate, signature and key-agreement work and N·K × D PRG
 * elements spread over the cores (K = N for the complete graph), each
 * costed at several times what it measures here (see docs/bench-results.md).
 */
export function phaseTimeoutMs(
  peers: number,
  elements: number,
  cores: number,
  neighbors = peers,
): number {
  const pairs = peers * Math.min(peers, neighbors + 1);
  return Math.ceil(30_000 + peers * 20 + (pairs * (10 + elements * 6e-5)) / Math.max(1, cores));
}

function peerNames(count: number): string[] {
  const width = Math.max(4, String(count).length);
  return Array.from({ length: count }, (_, i) => `peer-${String(i + 1).padStart(width, "0")}`);
}

function mergeEvents(reports: WorkerReport[]): Record<string, EventSpan> {
  const merged: Record<string, EventSpan> = {};
  for (const report of reports) {
    for (const [event, span] of Object.entries(report.events)) {
      const seen = merged[event];
      merged[event] = seen
        ? {
          count: seen.count + span.count,
          first: Math.min(seen.first, span.first),
          last: Math.max(seen.last, span.last),
        }
        : { ...span };
    }
  }
  return merged;
}

/** Time per phase, each until the last peer's event that ends it. */
function phaseTimes(
  events: Record<string, EventSpan>,
  started: number,
  threshold: boolean,
): Record<string, number> {
  const marks: [string, string][] = [
    ["startup", "loaded"],
    ["connect", "connected"],
    ...phasesOf(threshold).map((phase): [string, string] => [phase, PHASE_MESSAGES[phase]]),
    ["result", "done"],
  ];
  const phases: Record<string, number> = {};
  let previous = started;
  for (const [phase, event] of marks) {
    const span = events[event];
    if (!span) continue;
    phases[phase] = Math.round((span.last - previous) * 10) / 10;
    previous = span.last;
  }
  return phases;
}

/** The hospital's arguments after `hospital`. */
function hospitalArgs(options: SimulateOptions, dir: string, timeoutMs: number): string[] {
  const vector = options.query.kind === "vector";
  return [
    "--listen",
    "127.0.0.1:0",
    "--peers",
    String(options.peers),
    "--certs",
    dir,
    "--json",
    "--query",
    options.queryText,
    ...(options.query.kind === "histogram" ? [] : ["--max", String(VALUE_LIMIT - 1)]),
    "--max-rows",
    String(vector ? 1 : MAX_ROWS),
    ...(options.threshold === undefined ? [] : ["--threshold", String(options.threshold)]),
    ...(options.neighbors === undefined ? [] : ["--neighbors", String(options.neighbors)]),
    ...(options.uploads === undefined ? [] : ["--uploads", String(options.uploads)]),
    "--timeout",
    String(Math.ceil(timeoutMs / 1000)),
  ];
}

function parseResources(
  lines: string[],
): { cpuMs: number; servingCpuMs: number | null; peakRssBytes: number } | undefined {
  const line = lines.findLast((l) => l.startsWith("resources "));
  return line === undefined ? undefined : JSON.parse(line.slice("resources ".length));
}

/** Runs one simulated round. Throws when it cannot run; a wrong result is reported, not thrown. */
export async function simulate(
  options: SimulateOptions,
  log: (line: string) => void = () => {},
): Promise<SimulationReport> {
  const { peers, seed, query } = options;
  const names = peerNames(peers);
  const cores = navigator.hardwareConcurrency || 1;
  const plan = dropoutPlan(seed, peers, options.dropouts, {
    at: options.dropoutAt,
    phases: phasesOf(options.threshold !== undefined),
  });
  const timeoutMs = phaseTimeoutMs(peers, dimension(query), cores, options.neighbors);
  const children: Child[] = [];
  const profile = (name: string) =>
    options.cpuProf === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${options.cpuProf}`, `--cpu-prof-name=${name}.cpuprofile`];
  // Created 0700: the folder holds every party's private key.
  const dir = await Deno.makeTempDir({ prefix: "sumshare-simulate-" });
  // One clean-up, for the end of the run and for Ctrl-C (lib/interrupt.ts).
  const cleanUp = async () => {
    for (const child of children) child.kill();
    await Promise.allSettled(children.map((c) => c.finish()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const release = cleanUpOnInterrupt(cleanUp);
  try {
    await Deno.chmod(dir, 0o700);
    let started = performance.now();
    await writeConsortium(dir, await createConsortium(["hospital", ...names]));
    const pkiMs = performance.now() - started;
    log(
      `made a throwaway PKI for the hospital and ${peers} peers in ${
        pkiMs.toFixed(0)
      } ms, in ${dir} (removed at the end)`,
    );

    started = performance.now();
    const hospital = new Child(
      "the hospital",
      [
        ...denoCommand("./hospital_entry.ts", dir, profile("hospital")),
        "hospital",
        ...hospitalArgs(options, dir, timeoutMs),
      ],
      { keep: /^resources / },
    );
    children.push(hospital);
    const address = parseHostPort((await hospital.waitForLine(/^listening on (\S+)$/, 30_000))[1]!);
    const hospitalStartMs = performance.now() - started;

    const workers = Array.from({ length: options.workers }, (_, w) => {
      // Round-robin, so dropouts and connection order spread over the workers.
      const assigned = names.flatMap((name, index) =>
        index % options.workers === w
          ? [{ index, name, ...(plan[index] ? { dropAt: plan[index] } : {}) }]
          : []
      );
      const config: WorkerConfig = {
        dir,
        hospital: address,
        hospitalName: "hospital",
        seed,
        query: options.queryText,
        peers: assigned,
        inviteTimeoutMs: timeoutMs,
        concurrency: 16,
      };
      return new Child(
        `worker ${w + 1}`,
        denoCommand("./worker.ts", dir, profile(`worker-${w + 1}`)),
        {
          stdin: JSON.stringify(config),
        },
      );
    });
    children.push(...workers);
    const workersStarted = performance.timeOrigin + performance.now();
    log(`started ${options.workers} workers for ${peers} peers; phase deadlines ${timeoutMs} ms`);

    // Every party bounds its own waits; this only guards against a child that hangs anyway.
    const watchdog = setTimeout(() => {
      log("a process ran past every deadline; stopping everything");
      for (const child of children) child.kill();
    }, timeoutMs * 9 + 60_000);
    const [outcome, ...workerOutcomes] = await Promise.all(children.map((c) => c.finish()))
      .finally(() => clearTimeout(watchdog));
    // The hospital's reason first: when it aborts, every peer's failure follows from it.
    if (outcome!.code !== 0) {
      throw new RoundAbortedError(`the hospital exited ${outcome!.code}: ${hospital.tail(4)}`);
    }
    const reports = workerOutcomes.map((o, w) => {
      if (o.code !== 0) throw new Error(`worker ${w + 1} failed: ${workers[w]!.tail()}`);
      return JSON.parse(o.stdout) as WorkerReport;
    });
    const answer = JSON.parse(outcome!.stdout) as {
      result: Record<string, unknown>;
      contributors: string[];
      startToResultMs: number;
      bytesReceived: number;
      bytesSent: number;
      cpuMs?: number;
      peakRssBytes?: number;
    };

    const peerReports = reports.flatMap((r) => r.peers).sort((a, b) => a.index - b.index);
    const index = new Map(names.map((name, i) => [name, i]));
    const summed = answer.contributors.map((name) => index.get(name)!);
    const { expected, unexpected, asPlanned } = checkPlan(
      plan,
      names,
      peerReports,
      answer.contributors,
    );
    const totals = plaintextTotals(seed, summed, query);
    const byPhase: Partial<Record<Phase, number>> = {};
    for (const phase of PHASES) {
      const count = plan.filter((p) => p === phase).length;
      if (count > 0) byPhase[phase] = count;
    }
    const finished = peerReports.filter((p) => p.status === "done");
    const events = mergeEvents(reports);
    // Worker start-up (Deno, then each peer loading its credentials) ends when the last is ready.
    const loaded = Math.max(...reports.map((r) => r.loadedAt));
    events["loaded"] = { count: reports.length, first: loaded, last: loaded };
    const resources = parseResources(hospital.kept);
    return {
      peers,
      workers: options.workers,
      seed,
      query: options.queryText,
      mode: options.threshold === undefined ? "n-of-n" : "threshold",
      threshold: options.threshold ?? peers,
      graph: options.neighbors === undefined ? "complete" : "sparse",
      neighbors: options.neighbors ?? peers - 1,
      dropouts: { count: options.dropouts, byPhase },
      survivors: answer.contributors.length,
      expectedSurvivors: expected.length,
      match: resultMatches(query, answer.result, totals),
      asPlanned,
      result: answer.result,
      plaintext: plaintextResult(query, totals),
      startToResultMs: answer.startToResultMs,
      wallMs: Math.round((events["done"]?.last ?? workersStarted) - workersStarted),
      phases: phaseTimes(events, workersStarted, options.threshold !== undefined),
      bytes: answer.bytesReceived + answer.bytesSent,
      bytesPerPeer: finished.length === 0
        ? 0
        : Math.round(finished.reduce((a, p) => a + p.bytesIn + p.bytesOut, 0) / finished.length),
      hospitalCpuMs: answer.cpuMs ?? resources?.servingCpuMs ?? null,
      hospitalPeakRss: answer.peakRssBytes ?? resources?.peakRssBytes ?? null,
      peerCpuMs: Math.round(reports.reduce((a, r) => a + r.roundCpuMs, 0) / peers * 10) / 10,
      workerPeakRss: Math.max(...reports.map((r) => r.peakRssBytes)),
      setup: {
        pkiMs: Math.round(pkiMs),
        identitiesMs: Math.round(Math.max(...reports.map((r) => r.loadMs))),
        hospitalStartMs: Math.round(hospitalStartMs),
      },
      phaseTimeoutMs: timeoutMs,
      unexpected: unexpected.slice(0, 10).map((p) => ({
        name: p.name,
        status: p.status,
        reason: p.reason,
      })),
    };
  } finally {
    await cleanUp();
    release();
  }
}
