/**
 * Helpers for the star fault and hostile tests: start a hospital and its
 * peers as real CLI processes, wait on lines they print, and check how each
 * one ended.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CliProcess } from "./helpers.ts";
import { type PeerSpec, type StarRound, startStar } from "./scenarios.ts";

export type { StarRound };

/** One phase's timeout, in seconds, for fault tests: short, but room on a loaded machine. */
export const FAULT_TIMEOUT_S = 8;

/**
 * Starts the hospital for every peer in `values`, then each peer with its
 * value, each with `--timeout`; every process is pushed to `processes` for
 * the scenario to stop. `hospitalAddress` replaces the address a peer is
 * given (e.g. a proxy). `joinTimeoutS` widens only the wait for everyone
 * to connect: starting processes on a loaded machine is slow, while the
 * phase deadlines under test stay short.
 */
export function startRound(
  processes: CliProcess[],
  dir: string,
  values: Record<string, number>,
  options: {
    hospitalArgs?: string[];
    hospitalAddress?: Record<string, string>;
    /** How many peers the hospital waits for; default every peer started. */
    peers?: number;
    timeoutS?: number;
    joinTimeoutS?: number;
  } = {},
): Promise<StarRound> {
  const timeout = ["--timeout", String(options.timeoutS ?? FAULT_TIMEOUT_S)];
  const join = options.joinTimeoutS === undefined
    ? []
    : ["--join-timeout", String(options.joinTimeoutS)];
  const peers = Object.entries(values).map(([name, value]): PeerSpec => [
    name,
    ["--value", String(value), ...timeout, ...join],
  ]);
  return startStar(
    processes,
    dir,
    peers,
    {
      hospitalArgs: [...timeout, ...join, ...(options.hospitalArgs ?? [])],
      ...(options.peers === undefined ? {} : { peers: options.peers }),
      addressFor: (name, address) => options.hospitalAddress?.[name] ?? address,
    },
  );
}

/** A process's end: exit code and stderr. */
export interface Ended {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Waits for a process to exit, failing (and killing it) after `ms`; says how long it took. */
export async function ended(process: CliProcess, ms: number): Promise<Ended> {
  const started = performance.now();
  const result = await process.finish(ms);
  const took = performance.now() - started;
  assert.ok(took < ms, `${process.name} did not end within ${ms} ms`);
  return { ...result, ms: took };
}

/**
 * Asserts a clean abort: exit 1, a one-line reason on stderr, no stack
 * trace, no raw runtime error and no "bug" text.
 */
export function assertCleanAbort(name: string, end: Ended, reason: RegExp): void {
  assert.equal(end.code, 1, `${name} exited ${end.code}, expected 1`);
  assert.match(end.stderr, reason, `${name} gave no reason matching ${reason}`);
  assert.doesNotMatch(
    end.stderr,
    /^\s+at |Uncaught|a bug|panicked|Bad resource ID/m,
    `${name}: not a clean abort`,
  );
  assertNoResult(name, end.stdout);
}

/**
 * Asserts `stdout` carries no result: nothing, or (with `--json`) one error
 * object and no sum.
 */
export function assertNoResult(name: string, stdout: string): void {
  if (stdout.trim() === "") return;
  let report: unknown;
  try {
    report = JSON.parse(stdout);
  } catch {
    assert.fail(`${name} printed something other than a JSON error in an aborted round: ${stdout}`);
  }
  assert.ok(
    typeof report === "object" && report !== null && "error" in report && !("sum" in report),
    `${name} printed a result in an aborted round: ${stdout}`,
  );
}

/** The hospital's JSON result, after asserting it exited 0. */
export function resultOf(
  end: Ended,
): { sum: number; contributors: string[]; participants: string[] } {
  assert.equal(end.code, 0, `the hospital exited ${end.code}`);
  return JSON.parse(end.stdout);
}
