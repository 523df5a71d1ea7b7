/**
 * Helpers for the service tests: a serving hospital and peer agents as real
 * CLI processes over real mutual TLS, with certificates from the project's
 * own PKI code, configs written as a data owner would, and `ask` through the
 * Unix control socket. Every wait is on a line a process printed, with a
 * timeout; logs are printed only when a test fails.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "../../lib/net/client.ts";
import type { Connection } from "../../lib/net/connection.ts";
import { listen, type Server } from "../../lib/net/server.ts";
import { CliProcess, ROOT } from "../helpers.ts";

/** Each phase's timeout for the service under test, in seconds. */
export const PHASE_S = 8;

/** One site: its name, its CSV column's name and its rows (text cells, "NA" for missing). */
export interface Site {
  name: string;
  column: string;
  cells: string[];
  /** Extra TOML lines for [data.chol]. */
  variable?: string;
  /** Extra TOML lines for [policy]. */
  policy?: string;
  /** More TOML at the end (more [data.VAR] tables). */
  more?: string;
  scale?: number;
  /** chol's declared `max` as TOML (default 400). */
  max?: string;
}

/** Writes a site's CSV (with a second column, as a clinic's table has) and its agent config. */
export async function writeSite(
  dir: string,
  pki: string,
  site: Site,
  port: number,
): Promise<string> {
  const rows = site.cells.map((cell, i) => `${i + 1},${cell}`);
  await writeCsv(dir, site, rows);
  const config = join(dir, `${site.name}.toml`);
  await Deno.writeTextFile(
    config,
    `name = "${site.name}"
hospital = "127.0.0.1:${port}"
hospital_name = "hospital"
certs = "${pki}"

[data.chol]
file = "${site.name}.csv"
column = "${site.column}"
scale = ${site.scale ?? 1}
max = ${site.max ?? "400"}
${site.variable ?? ""}

[policy]
allow = ["count", "sum", "mean", "variance", "histogram"]
min_contributors = 2
max_histogram_bins = 20
${site.policy ?? ""}
${site.more ?? ""}
`,
  );
  return config;
}

/** Writes each site's files and starts its agent towards the hospital at `port`; by name. */
export async function startAgents(
  processes: CliProcess[],
  dir: string,
  pki: string,
  sites: readonly Site[],
  port: number,
): Promise<Map<string, CliProcess>> {
  const agents = new Map<string, CliProcess>();
  for (const site of sites) {
    agents.set(site.name, startAgent(processes, site.name, await writeSite(dir, pki, site, port)));
  }
  return agents;
}

/** Rewrites a site's CSV with new cells (the next round reads it afresh). */
export async function writeCsv(dir: string, site: Site, rows?: string[]): Promise<void> {
  const lines = rows ?? site.cells.map((cell, i) => `${i + 1},${cell}`);
  await Deno.writeTextFile(
    join(dir, `${site.name}.csv`),
    `id,${site.column}\n${lines.join("\n")}\n`,
  );
}

/** Starts the serving hospital; resolves once it listens, with its address. */
export async function startService(
  processes: CliProcess[],
  pki: string,
  control: string,
  listen = "127.0.0.1:0",
  extra: string[] = [],
): Promise<{ hospital: CliProcess; port: number }> {
  const hospital = new CliProcess("hospital", [
    "hospital",
    "--serve",
    "--listen",
    listen,
    "--control",
    control,
    "--certs",
    pki,
    "--timeout",
    String(PHASE_S),
    ...extra,
  ]);
  processes.push(hospital);
  const address = (await hospital.waitForLine(/listening on (\S+)$/, 30_000))[1]!;
  await hospital.waitForLine(/control socket /, 10_000);
  return { hospital, port: Number(address.split(":").pop()) };
}

/** Starts an agent for `config`. */
export function startAgent(processes: CliProcess[], name: string, config: string): CliProcess {
  const agent = new CliProcess(name, ["peer", "--serve", "--config", config]);
  processes.push(agent);
  return agent;
}

/** Runs `sumshare ask --json` and returns its exit code and parsed stdout. */
export async function ask(
  processes: CliProcess[],
  control: string,
  args: string[],
  ms = 60_000,
): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const process = new CliProcess("ask", ["ask", "--control", control, "--json", ...args]);
  processes.push(process);
  const end = await process.finish(ms);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(end.stdout);
  } catch {
    throw new Error(`ask printed no JSON (exit ${end.code}): ${end.stdout}\n${end.stderr}`);
  }
  return { code: end.code, json, stderr: end.stderr };
}

/** The result object of a successful ask. */
export function resultOf(answer: { code: number; json: Record<string, unknown> }) {
  assert.equal(answer.code, 0, `ask failed: ${JSON.stringify(answer.json)}`);
  return answer.json as {
    result: Record<string, unknown>;
    contributors: string[];
    participants: string[];
    session: string;
    receipt?: string;
  };
}

/** Exact plain statistics of scaled-by-10 values, computed as the decoder does. */
export function plain(values: bigint[], bins: { low: bigint; high: bigint; count: number }) {
  const sum = values.reduce((a, b) => a + b, 0n);
  const squares = values.reduce((a, b) => a + b * b, 0n);
  const count = BigInt(values.length);
  const histogram = new Array<number>(bins.count).fill(0);
  for (const v of values) {
    const bin = v === bins.high
      ? bins.count - 1
      : Number(((v - bins.low) * BigInt(bins.count)) / (bins.high - bins.low));
    histogram[bin]!++;
  }
  return {
    count: values.length,
    sum: Number(sum) / 10,
    mean: Number(sum) / Number(count) / 10,
    variance: ratio(count * squares - sum * sum, count * count * 100n),
    histogram,
  };
}

/**
 * n/d as the binary64 nearest to it: the exact quotient to 60 decimal
 * places, then the correctly rounded parse of that decimal (off only when
 * n/d lies within 10^-60 of a midpoint between two binary64s).
 */
export function ratio(n: bigint, d: bigint): number {
  const places = 60;
  const digits = ((n * 10n ** BigInt(places)) / d).toString().padStart(places + 1, "0");
  return Number(`${digits.slice(0, -places)}.${digits.slice(-places)}`);
}

/** A port free on 127.0.0.1 just now (for a hospital that must come back on the same one). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The JSON lines of an agent's audit log. */
export async function auditOf(dir: string, name: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(join(dir, `${name}.audit.log`));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

/** Waits (up to `ms`) until an agent's audit log has `count` entries with `outcome`. */
export async function waitForAudit(
  dir: string,
  name: string,
  outcome: string,
  count: number,
  ms = 10_000,
): Promise<Record<string, unknown>[]> {
  const started = performance.now();
  for (;;) {
    const entries = await auditOf(dir, name).catch(() => []);
    const matching = entries.filter((e) => e["outcome"] === outcome);
    if (matching.length >= count) return matching;
    if (performance.now() - started > ms) {
      throw new Error(
        `${name}'s audit log has ${matching.length} ${outcome} entries, not ${count}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The opening of a hand-written party's script: `conn`, a mutual-TLS
 * connection to the hospital at 127.0.0.1:`port` as `name` with its
 * certificate from `pki`, and `stop`, a two-minute signal for every wait.
 */
export function scriptConnect(pki: string, port: number, name: string): string {
  const client = new URL("../../lib/net/client.ts", import.meta.url).href;
  return `import { connect } from "${client}";
const pki = ${JSON.stringify(pki)};
const read = (name: string) => Deno.readTextFileSync(pki + "/" + name);
const stop = AbortSignal.timeout(120_000);
const conn = await connect({
  hostname: "127.0.0.1", port: ${port}, ca: read("ca.crt"), cert: read("${name}.crt"),
  key: read("${name}.key"), peer: "the hospital",
}, stop);
`;
}

/**
 * Runs a hand-written party (`script`, a Deno module) as its own process
 * named `name`, and returns once it prints a line matching `ready`.
 */
export async function startScript(
  processes: CliProcess[],
  name: string,
  script: string,
  ready: RegExp,
): Promise<CliProcess> {
  const party = new CliProcess(name, [], [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--config",
    join(ROOT, "deno.json"),
    "--allow-all",
    script,
  ]);
  processes.push(party);
  await party.waitForLine(ready, 30_000);
  return party;
}

/**
 * What an {@linkcode AgentRelay} passes on for one frame payload: the
 * payloads to send in its place (none: dropped; several: injected).
 */
export type RelayHook = (payload: Uint8Array<ArrayBuffer>) => Uint8Array[];

/** Options for {@linkcode AgentRelay.start}. */
export interface AgentRelayOptions {
  /** Frames from the hospital to the agent (default: passed as they are). */
  toAgent?: RelayHook;
  /** Frames from the agent to the hospital (default: passed as they are). */
  toHospital?: RelayHook;
  /**
   * Take one agent connection only, and when one side ends leave the other
   * open, so that nothing cuts short a wait the test is causing (default:
   * every connection, both sides closed together, so the agent reconnects).
   */
  once?: boolean;
}

/**
 * A man in the middle for one agent, holding the hospital's and the agent's
 * credentials from the test's PKI: mutual TLS to the agent as the
 * hospital and to the hospital as the agent, every frame passed through the
 * hooks. It stands for a hospital gone bad (its key in hostile hands) or a
 * network that loses what the hooks drop.
 */
export class AgentRelay {
  #server: Server;
  #stop = new AbortController();
  #conns = new Set<Connection>();
  #options: AgentRelayOptions;
  #pki: string;
  #as: string;
  #target: number;

  private constructor(
    server: Server,
    pki: string,
    as: string,
    target: number,
    options: AgentRelayOptions,
  ) {
    this.#server = server;
    this.#pki = pki;
    this.#as = as;
    this.#target = target;
    this.#options = options;
    void this.#accept();
  }

  /** Relays agent `as`'s connections to the hospital at 127.0.0.1:`target`. */
  static async start(
    pki: string,
    as: string,
    target: number,
    options: AgentRelayOptions = {},
  ): Promise<AgentRelay> {
    const read = (file: string) => Deno.readTextFile(join(pki, file));
    const server = await listen({
      hostname: "127.0.0.1",
      port: 0,
      ca: await read("ca.crt"),
      cert: await read("hospital.crt"),
      key: await read("hospital.key"),
      authorize: () => Promise.resolve(as),
    });
    return new AgentRelay(server, pki, as, target, options);
  }

  /** Where the agent connects instead of the hospital. */
  get port(): number {
    return this.#server.port;
  }

  close(): void {
    this.#stop.abort();
    this.#server.close();
    for (const conn of this.#conns) conn.close();
  }

  async #accept(): Promise<void> {
    const read = (file: string) => Deno.readTextFile(join(this.#pki, file));
    const signal = this.#stop.signal;
    const pass: RelayHook = (payload) => [payload];
    while (!signal.aborted) {
      let agent: Connection;
      try {
        agent = await this.#server.accept(signal);
      } catch {
        return;
      }
      this.#conns.add(agent);
      if (this.#options.once) this.#server.close();
      let hospital: Connection;
      try {
        hospital = await connect({
          hostname: "127.0.0.1",
          port: this.#target,
          ca: await read("ca.crt"),
          cert: await read(`${this.#as}.crt`),
          key: await read(`${this.#as}.key`),
        }, signal);
      } catch {
        agent.close();
        continue;
      }
      this.#conns.add(hospital);
      void this.#pump(hospital, agent, this.#options.toAgent ?? pass);
      void this.#pump(agent, hospital, this.#options.toHospital ?? pass);
      if (this.#options.once) return;
    }
  }

  async #pump(from: Connection, to: Connection, hook: RelayHook): Promise<void> {
    const signal = this.#stop.signal;
    try {
      for (let first = true;; first = false) {
        const payload = await from.readFrame(signal);
        if (first) from.raiseLimit();
        for (const out of hook(payload)) await to.write(out, signal);
      }
    } catch {
      from.close();
      if (!this.#options.once) to.close();
    }
  }
}
