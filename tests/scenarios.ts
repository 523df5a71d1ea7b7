/**
 * The star round as tests build it, once: a hospital started with its
 * flags, its announced address, then each peer with its own arguments
 * against that address (or a proxy's), every process pushed to the
 * scenario's list so that `scenario` stops it; then every end collected.
 * Tests that need something between the hospital and its peers (an
 * attacker, a folder removed) call `startHospital` and `startPeers` apart.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  cliCommand,
  CliProcess,
  hospitalArgs,
  type HospitalFlags,
  type Outcome,
  peerArgs,
  scenario,
  stopAll,
} from "./helpers.ts";

/** One peer: its name and its arguments after --name, --hospital and the credentials. */
export type PeerSpec = readonly [name: string, args: readonly string[]];

/** How a round is started; every field has the default a plain round needs. */
export interface StarOptions {
  /** The hospital's arguments after --listen, --peers, the credentials and --json. */
  hospitalArgs?: readonly string[];
  /** `--listen`; default 127.0.0.1 port 0. */
  listen?: string;
  /** `--json` for the hospital (default true). */
  json?: boolean;
  /** How many peers the hospital waits for; default every peer started. */
  peers?: number;
  /** A party's credential options; default `--certs DIR`. */
  credentials?: (name: string) => string[];
  /** The program, e.g. the compiled binary; default Deno on main.ts. */
  command?: string[];
  /** The address a peer is given instead of the hospital's (e.g. a proxy's). */
  addressFor?: (name: string, address: string) => string;
}

/** A running round: the hospital, its address and each peer by name. */
export interface StarRound {
  hospital: CliProcess;
  address: string;
  peers: Map<string, CliProcess>;
}

/** How a round ended: the hospital's and each peer's outcome. */
export interface StarEnd {
  hospital: Outcome;
  peers: Map<string, Outcome>;
}

/** The hospital's flags for `options`, waiting for `peers` peers unless options say otherwise. */
function flagsOf(options: StarOptions, peers: number): HospitalFlags {
  return {
    peers: options.peers ?? peers,
    ...(options.listen === undefined ? {} : { listen: options.listen }),
    ...(options.json === undefined ? {} : { json: options.json }),
    ...(options.credentials ? { credentials: options.credentials("hospital") } : {}),
  };
}

/** Starts the hospital for `peers` peers and waits for the address it announces. */
export async function startHospital(
  processes: CliProcess[],
  dir: string,
  peers: number,
  options: StarOptions = {},
): Promise<{ hospital: CliProcess; address: string }> {
  const hospital = new CliProcess(
    "hospital",
    hospitalArgs(dir, flagsOf(options, peers), [...(options.hospitalArgs ?? [])]),
    options.command ?? cliCommand(),
  );
  processes.push(hospital);
  return { hospital, address: await hospital.address() };
}

/** Starts each peer against `address` (or `options.addressFor`'s). */
export function startPeers(
  processes: CliProcess[],
  dir: string,
  address: string,
  peers: readonly PeerSpec[],
  options: StarOptions = {},
): Map<string, CliProcess> {
  const started = new Map<string, CliProcess>();
  for (const [name, args] of peers) {
    const target = options.addressFor?.(name, address) ?? address;
    const peer = new CliProcess(
      name,
      peerArgs(dir, name, target, [...args], options.credentials?.(name)),
      options.command ?? cliCommand(),
    );
    processes.push(peer);
    started.set(name, peer);
  }
  return started;
}

/** Starts the hospital, then every peer once it listens. */
export async function startStar(
  processes: CliProcess[],
  dir: string,
  peers: readonly PeerSpec[],
  options: StarOptions = {},
): Promise<StarRound> {
  const { hospital, address } = await startHospital(processes, dir, peers.length, options);
  return { hospital, address, peers: startPeers(processes, dir, address, peers, options) };
}

/** Waits for every process of `round` to exit (each killed after `ms`). */
export async function finishStar(round: StarRound, ms?: number): Promise<StarEnd> {
  const names = [...round.peers.keys()];
  const [hospital, ...peers] = await Promise.all([
    round.hospital.finish(ms),
    ...names.map((name) => round.peers.get(name)!.finish(ms)),
  ]);
  return { hospital: hospital!, peers: new Map(names.map((name, i) => [name, peers[i]!])) };
}

/**
 * Runs one whole round through the CLI: the hospital with `hospitalArgs`
 * (after --listen, --peers, --certs and --json), then each peer with its own
 * arguments (after --name, --hospital and --certs). Requires every process to
 * exit 0 and returns the hospital's JSON; on failure prints every log.
 */
export async function runRound(
  dir: string,
  hospitalArgs: readonly string[],
  peers: readonly PeerSpec[],
  options: StarOptions = {},
): Promise<Record<string, unknown>> {
  let report: Record<string, unknown> = {};
  await scenario([], async (processes) => {
    const end = await finishStar(
      await startStar(processes, dir, peers, { ...options, hospitalArgs }),
    );
    assert.equal(end.hospital.code, 0, `the hospital exited ${end.hospital.code}`);
    for (const [name, outcome] of end.peers) {
      assert.equal(outcome.code, 0, `${name} exited ${outcome.code}`);
    }
    report = JSON.parse(end.hospital.stdout);
  });
  return report;
}

/**
 * Runs `sumshare hospital` with `args` to its end, for the cases where it
 * must stop before or without a round (a refused option, bad credentials).
 */
export function hospitalOutcome(
  dir: string,
  args: readonly string[],
  options: StarOptions & { peers?: number } = {},
): Promise<Outcome> {
  return new CliProcess(
    "hospital",
    hospitalArgs(dir, flagsOf(options, options.peers ?? 2), [...args]),
    options.command ?? cliCommand(),
  ).finish();
}

/** Asserts the hospital refused `args` as a usage error (exit 2) before it listened. */
export function assertRefusedBeforeListening(outcome: Outcome, reason: RegExp): void {
  assert.equal(outcome.code, 2, outcome.stderr);
  assert.match(outcome.stderr, reason);
  assert.doesNotMatch(outcome.stderr, /listening on/);
}

/** Runs the one-machine demo, `sumshare run ARGS`, to its end; requires exit 0 and returns stdout. */
export async function runDemo(
  args: readonly string[],
  options: { command?: string[] } = {},
): Promise<string> {
  const demo = new CliProcess("run", ["run", ...args], options.command ?? cliCommand());
  try {
    const result = await demo.finish(60_000);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    return result.stdout;
  } finally {
    await stopAll([demo]);
  }
}
