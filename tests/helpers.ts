/**
 * Test helpers: a real PKI from the project's own `certs` code, and spawning
 * the CLI as a separate process whose announced address and output we read.
 * The star protocol: the hospital listens; each peer makes one connection
 * to it and never listens, so peers take no address of their own.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { textLines } from "../lib/demo.ts";
import { unstamped } from "../lib/log.ts";
import { createConsortium, writeConsortium } from "../lib/pki.ts";
import { Rng } from "./rng.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Writes a consortium PKI for `names` into a fresh temporary folder. */
export async function makePki(
  names: string[],
  hosts = ["localhost", "127.0.0.1"],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  await writeConsortium(dir, await createConsortium(names, { hosts }));
  return dir;
}

/** Removes a temporary folder. */
export async function removeDir(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * The permissions and V8 flags baked into the compiled executable, read from
 * the `compile` task, so the CLI under test runs as users' binary does.
 */
export function compiledFlags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const task = String(config.tasks.compile);
  return task.split(/\s+/).filter((word) => /^--(allow-|v8-flags=)/.test(word));
}

/** How a test runs the CLI: Deno on main.ts with the compiled binary's permissions and flags. */
export function cliCommand(): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--config",
    join(ROOT, "deno.json"),
    ...compiledFlags(),
    join(ROOT, "main.ts"),
  ];
}

/** How a CLI process ended. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A CLI process under test. */
export class CliProcess {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly stderrLines: string[] = [];
  #waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  readonly stdout: Promise<string>;
  readonly #stderrDone: Promise<void>;

  constructor(name: string, args: string[], command: string[] = cliCommand()) {
    this.name = name;
    const child = new Deno.Command(command[0]!, {
      args: [...command.slice(1), ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      cwd: ROOT,
    }).spawn();
    this.child = child;
    this.stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      // Log lines come stamped with the time; the tests match what follows the stamp.
      for await (const stampedLine of textLines(child.stderr)) {
        const line = unstamped(stampedLine);
        this.stderrLines.push(line);
        for (const w of [...this.#waiters]) {
          const m = w.pattern.exec(line);
          if (m) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    })();
  }

  /** Waits for a stderr line matching `pattern`, failing after `ms`. */
  waitForLine(pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    for (const line of this.stderrLines) {
      const m = pattern.exec(line);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`${this.name}: no line matching ${pattern} within ${ms} ms\n${this.log()}`),
        );
      }, ms);
      this.#waiters.push({
        pattern,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
      this.child.status.then(() => this.#stderrDone).then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before printing ${pattern}\n${this.log()}`));
      });
    });
  }

  /** Waits until `count` stderr lines match `pattern`; returns them. */
  async waitForLines(pattern: RegExp, count: number, ms = 20_000): Promise<string[]> {
    const started = performance.now();
    for (;;) {
      const lines = this.stderrLines.filter((l) => pattern.test(l));
      if (lines.length >= count) return lines;
      if (performance.now() - started > ms) {
        throw new Error(
          `${this.name}: fewer than ${count} lines matching ${pattern}\n${this.log()}`,
        );
      }
      const exited = await Promise.race([
        this.child.status.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 10)),
      ]);
      if (exited && this.stderrLines.filter((l) => pattern.test(l)).length < count) {
        await this.#stderrDone;
        if (this.stderrLines.filter((l) => pattern.test(l)).length >= count) continue;
        throw new Error(
          `${this.name} exited before ${count} lines matching ${pattern}\n${this.log()}`,
        );
      }
    }
  }

  /** The hospital's address, as it announces it: `listening on HOST:PORT` (a peer never listens). */
  async address(ms?: number): Promise<string> {
    return (await this.waitForLine(/^listening on (\S+)$/, ms))[1]!;
  }

  /** Waits for exit (killing the process after `ms`) and returns its outcome. */
  async finish(ms = 60_000): Promise<Outcome> {
    const timer = setTimeout(() => this.kill(), ms);
    try {
      const status = await this.child.status;
      await this.#stderrDone;
      return { code: status.code, stdout: await this.stdout, stderr: this.stderrLines.join("\n") };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal, ignoring a process that already exited. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /** The captured stderr, labelled, for failure messages. */
  log(): string {
    return this.stderrLines.map((l) => `  [${this.name}] ${l}`).join("\n");
  }
}

/** Kills every process and waits for them; for `finally` blocks. */
export async function stopAll(processes: CliProcess[]): Promise<void> {
  for (const p of processes) p.kill();
  await Promise.allSettled(processes.map((p) => p.finish(5000)));
}

/**
 * Asserts `text` never shows `value` as a number of its own. A plain substring
 * check is not enough: ports, session ids and paths printed beside it can hold
 * the same digits by chance (CI once failed on a port containing "150").
 */
export function assertValueNotPrinted(
  text: string,
  value: bigint | number,
  message?: string,
): void {
  // Not inside a longer number, port, hex id or path ("41503", "150abcde"), but
  // caught before a full stop or colon ("refused 150: too large").
  const literal = String(value).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const standalone = new RegExp(`(?<![\\w.:/-])${literal}(?![\\w/-]|[.:]\\d)`);
  assert.doesNotMatch(text, standalone, message ?? `the output shows the value ${value}`);
}

/** Prints every process's stderr; call when an assertion failed. */
export function dumpLogs(processes: CliProcess[]): void {
  console.error(processes.map((p) => p.log()).join("\n"));
}

/** How a hospital is started: everything but the round's own terms. */
export interface HospitalFlags {
  /** How many peers it waits for. */
  peers: number;
  /** `--listen`; default 127.0.0.1 port 0, announced on stderr. */
  listen?: string;
  /** `--json` (default true): the result, or the error, as one JSON object on stdout. */
  json?: boolean;
  /** The credential options; default `--certs DIR`. */
  credentials?: string[];
}

/** The arguments of `sumshare hospital` with `flags`, then `extra`. */
export function hospitalArgs(dir: string, flags: HospitalFlags, extra: string[] = []): string[] {
  return [
    "hospital",
    "--listen",
    flags.listen ?? "127.0.0.1:0",
    "--peers",
    String(flags.peers),
    ...(flags.credentials ?? ["--certs", dir]),
    ...(flags.json === false ? [] : ["--json"]),
    ...extra,
  ];
}

/** The arguments of `sumshare peer NAME` against `address`, with `--certs DIR` unless `credentials`. */
export function peerArgs(
  dir: string,
  name: string,
  address: string,
  extra: string[] = [],
  credentials: string[] = ["--certs", dir],
): string[] {
  return ["peer", "--name", name, "--hospital", address, ...credentials, ...extra];
}

/** Starts `sumshare hospital` on 127.0.0.1 port 0 for `peers` peers, with --json. */
export function spawnHospital(dir: string, peers: number, ...extra: string[]): CliProcess {
  return new CliProcess("hospital", hospitalArgs(dir, { peers }, extra));
}

/** Starts `sumshare peer NAME` with `--value VALUE` against the hospital at `address`. */
export function spawnPeer(
  dir: string,
  name: string,
  value: string,
  address: string,
  ...extra: string[]
): CliProcess {
  return new CliProcess(name, peerArgs(dir, name, address, ["--value", value, ...extra]));
}

/** Runs `body`; on failure prints every process's log; always stops them and removes `dirs`. */
export async function scenario(
  dirs: string[],
  body: (processes: CliProcess[]) => Promise<void>,
): Promise<void> {
  const processes: CliProcess[] = [];
  try {
    await body(processes);
  } catch (error) {
    dumpLogs(processes);
    throw error;
  } finally {
    await stopAll(processes);
    for (const dir of dirs) await removeDir(dir);
  }
}

/** A small seeded generator (mulberry32), so a failing random scenario can be replayed. */
export function mulberry32(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.float();
}
