/**
 * `deno task bench`: rounds with every party a separate process on loopback,
 * one row per configuration, and the same run's limit for comparison.
 *
 * Columns: time from START to result (the hospital's own measurement); bytes
 * on the wire (frame bytes the processes count; TLS adds about 0.1 %) per peer
 * and in total; bandwidth expansion against every peer uploading its vector
 * once in the clear (8 bytes an element); peak resident memory per peer (the
 * largest, sampled from Deno.memoryUsage()) next to the runtime's own baseline and, for a
 * vector, next to a D = 1 peer of the same round size in this run; and the
 * limit: the time to move the same total bytes over one TLS connection on
 * loopback plus the time to generate the randomness the round needs (one
 * mask per pair, and in threshold rounds the self masks, added by the peers
 * and removed by the hospital), with our time's ratio to it.
 *
 * Simulate rows (`sumshare simulate`: N peers in worker processes, each with its
 * own mutual-TLS connection, the hospital its own process) get a table of their
 * own: START→result, time per phase, bytes, CPU and peak memory of the hospital
 * and per peer, and the limit: the least cryptography the spec asks of every
 * peer (per neighbour: a certificate check, two signature checks, two key
 * imports, a pairwise seed, in threshold rounds a sealing ECDH; measured in this
 * run, see primitives.ts) over the machine's cores, plus the PRG expansions.
 *
 * Usage: deno task bench [--quick] [--runs N] [--config N:D[:T[:drop]]]...
 *                        [--simulate N:D[:T[:F]]]... [--out FILE]
 * With --config or --simulate, only the rows given run.
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanUpOnInterrupt } from "../lib/interrupt.ts";
import { FieldStream } from "../lib/prg.ts";
import { createConsortium, writeConsortium } from "../lib/pki.ts";
import { parseSimulateOptions } from "../lib/simulate/options.ts";
import { simulate, type SimulationReport } from "../lib/simulate/run.ts";
import { cliCommand, CliProcess, removeDir } from "../tests/helpers.ts";
import { measurePrimitives, perNeighbourMs } from "./primitives.ts";

interface Config {
  peers: number;
  dimension: number;
  threshold?: number;
  /** Threshold rows: one peer is killed after sharing its keys, before its masked input. */
  dropout?: boolean;
}

const CONFIGS: Config[] = [
  { peers: 3, dimension: 1 },
  { peers: 10, dimension: 1 },
  { peers: 50, dimension: 1 },
  { peers: 10, dimension: 2 ** 20 },
  { peers: 10, dimension: 2 ** 20, threshold: 6, dropout: true },
];

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean" },
    out: { type: "string" },
    runs: { type: "string" },
    config: { type: "string", multiple: true },
    simulate: { type: "string", multiple: true },
  },
});
const RUNS = Number(flags.runs ?? (flags.quick ? 1 : 3));
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error("--runs must be a positive integer");
const someChosen = flags.config !== undefined || flags.simulate !== undefined;
const chosen = someChosen ? (flags.config ?? []).map(parseConfig) : CONFIGS;
const configs = flags.quick
  ? chosen.map((c) => ({ ...c, dimension: Math.min(c.dimension, 2 ** 16) }))
  : chosen;

/** Reads `--config N:D[:T]`, e.g. `10:1048576` or `10:1048576:6`. */
function parseConfig(text: string): Config {
  const [peers, dimension, threshold, ...rest] = text.replace(/:drop$/, "").split(":").map(Number);
  const positive = (x: number | undefined) => Number.isSafeInteger(x) && x! > 0;
  if (!positive(peers) || !positive(dimension) || rest.length > 0) {
    throw new Error(`Invalid --config "${text}": expected N:D or N:D:T`);
  }
  if (threshold !== undefined && !positive(threshold)) {
    throw new Error(`Invalid --config "${text}": T must be a positive integer`);
  }
  return {
    peers: peers!,
    dimension: dimension!,
    ...(threshold ? { threshold } : {}),
    ...(threshold && text.endsWith(":drop") ? { dropout: true } : {}),
  };
}

/** A `sumshare simulate` row: N peers in worker processes, complete graph. */
interface SimulateRow {
  peers: number;
  dimension: number;
  threshold?: number;
  /** The fraction that drops out (at a phase chosen from the seed for each). */
  dropout?: number;
  /** Sparse pairing: K, or "auto" (K and T from N and the assumed fractions). */
  neighbors?: number | "auto";
}

/**
 * The complete graph's reach on this machine: each peer's work grows with N,
 * so the round's grows with N² (N=1,000 needs the sparse graph of issue 10
 * and a participant cap above 500).
 */
const SIMULATE_ROWS: SimulateRow[] = [
  { peers: 200, dimension: 1 },
  { peers: 200, dimension: 1, threshold: 101, dropout: 0.1 },
  { peers: 100, dimension: 2 ** 16, threshold: 51, dropout: 0.1 },
  // Sparse pairing (SecAgg+), K and T chosen for 5 % colluders and 5 % dropouts.
  { peers: 50, dimension: 1, neighbors: "auto" },
  { peers: 200, dimension: 1, neighbors: "auto" },
  { peers: 1000, dimension: 1, neighbors: "auto" },
  { peers: 1000, dimension: 1, neighbors: "auto", dropout: 0.1 },
];

/**
 * Reads `--simulate N:D[:T[:F]]`, e.g. `200:1` or `100:65536:51:0.1`, or a
 * sparse row `N:D:auto[:F]` (K and T chosen) or `N:D:T:F:K`.
 */
function parseSimulateRow(text: string): SimulateRow {
  const auto = /^(\d+):(\d+):auto(?::([0-9.]+))?$/.exec(text);
  if (auto) {
    const dropout = auto[3] === undefined ? undefined : Number(auto[3]);
    return {
      peers: Number(auto[1]),
      dimension: Number(auto[2]),
      neighbors: "auto",
      ...(dropout ? { dropout } : {}),
    };
  }
  const [peers, dimension, threshold, dropout, k, ...rest] = text.split(":").map(Number);
  const positive = (x: number | undefined) => Number.isSafeInteger(x) && x! > 0;
  if (!positive(peers) || !positive(dimension) || rest.length > 0) {
    throw new Error(`Invalid --simulate "${text}": expected N:D, N:D:T or N:D:T:F`);
  }
  if (threshold !== undefined && !positive(threshold)) {
    throw new Error(`Invalid --simulate "${text}": T must be a positive integer`);
  }
  if (dropout !== undefined && !(dropout >= 0 && dropout < 1)) {
    throw new Error(`Invalid --simulate "${text}": F must be a fraction below 1`);
  }
  return {
    peers: peers!,
    dimension: dimension!,
    ...(threshold ? { threshold } : {}),
    ...(dropout ? { dropout } : {}),
    ...(k ? { neighbors: k } : {}),
  };
}

const simulateChosen = someChosen ? (flags.simulate ?? []).map(parseSimulateRow) : SIMULATE_ROWS;
const simulateRows = flags.quick
  ? simulateChosen.map((c) => ({ ...c, dimension: Math.min(c.dimension, 2 ** 16) }))
  : simulateChosen;
/** A simulate row takes minutes at N in the hundreds: one run each unless --runs says more. */
const SIMULATE_RUNS = flags.runs === undefined ? 1 : RUNS;

const MiB = 1024 * 1024;
const names = (n: number) =>
  Array.from({ length: n }, (_, i) => `p${String(i + 1).padStart(2, "0")}`);

/** Writes each peer's vector as one number per line: integers in [0, 2^20). */
async function writeInputs(dir: string, count: number, dimension: number): Promise<string[]> {
  const files: string[] = [];
  for (const name of names(count)) {
    const words = new Uint32Array(dimension);
    for (let i = 0; i < dimension; i += 16384) crypto.getRandomValues(words.subarray(i, i + 16384));
    const lines = Array.from(words, (w) => String(w & 0xfffff)).join("\n") + "\n";
    const file = join(dir, `${name}-${dimension}.txt`);
    await Deno.writeTextFile(file, lines);
    files.push(file);
  }
  return files;
}

interface Measured {
  startToResultMs: number;
  totalBytes: number;
  perPeerBytes: number;
  peakPeerRss: number;
}

async function runRound(
  dir: string,
  config: Config,
  inputs: string[] | undefined,
): Promise<Measured> {
  const processes: CliProcess[] = [];
  let dropped: Promise<void> = Promise.resolve();
  try {
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      String(config.peers),
      "--certs",
      dir,
      "--json",
      "--timeout",
      "120",
      "--max-rows",
      "1",
      ...(config.dimension > 1
        ? ["--query", `vector:${config.dimension}`, "--max", String(2 ** 20)]
        : []),
      ...(config.threshold ? ["--threshold", String(config.threshold)] : []),
    ]);
    processes.push(hospital);
    const address = await hospital.address(60_000);
    names(config.peers).forEach((name, i) => {
      const data = inputs ? ["--input", inputs[i]!] : ["--value", String(1000 + i)];
      const peer = new CliProcess(name, [
        "peer",
        "--name",
        name,
        ...data,
        "--hospital",
        address,
        "--certs",
        dir,
        "--json",
        "--timeout",
        "120",
      ]);
      processes.push(peer);
      if (config.dropout && i === config.peers - 1) {
        // The dropout: gone once its key shares are out, so the hospital must
        // rebuild its mask key to remove its pairwise masks.
        dropped = peer.waitForLine(/^sending sealed/, 120_000).then(() => peer.kill("SIGKILL"));
      }
    });
    const results = await Promise.all(processes.map((p) => p.finish(300_000)));
    await dropped;
    const kept = config.dropout ? results.slice(0, -1) : results;
    kept.forEach((r, i) => {
      if (r.code !== 0) throw new Error(`${processes[i]!.name} failed:\n${processes[i]!.log()}`);
    });
    const h = JSON.parse(kept[0]!.stdout);
    if (config.dropout && h.contributors.length !== config.peers - 1) {
      throw new Error(`the dropout was not left out: ${h.contributors.join(", ")}`);
    }
    const peers = kept.slice(1).map((r) => JSON.parse(r.stdout));
    const peerSent = peers.reduce((a, p) => a + p.bytesSent, 0);
    return {
      startToResultMs: h.startToResultMs,
      totalBytes: peerSent + h.bytesSent,
      perPeerBytes: peers.reduce((a, p) => a + p.bytesSent + p.bytesReceived, 0) / peers.length,
      peakPeerRss: Math.max(...peers.map((p) => p.peakRssBytes ?? 0)),
    };
  } finally {
    for (const p of processes) p.kill();
    await Promise.allSettled(processes.map((p) => p.finish(5000)));
  }
}

/** Milliseconds to push `bytes` through one TLS connection on loopback (after a warm-up). */
async function tlsTransferMs(dir: string, bytes: number): Promise<number> {
  const cert = await Deno.readTextFile(join(dir, "hospital.crt"));
  const key = await Deno.readTextFile(join(dir, "hospital.key"));
  const ca = await Deno.readTextFile(join(dir, "ca.crt"));
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  const port = (listener.addr as Deno.NetAddr).port;
  const receiving = (async () => {
    const conn = await listener.accept();
    await conn.handshake();
    const buffer = new Uint8Array(MiB);
    let got = 0;
    while (got < bytes) {
      const n = await conn.read(buffer);
      if (n === null) break;
      got += n;
    }
    conn.close();
  })();
  // Nagle off, as the protocol's clients have it: a fair limit.
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  tcp.setNoDelay(true);
  const conn = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [ca] });
  await conn.handshake();
  const chunk = new Uint8Array(512 * 1024);
  const started = performance.now();
  for (let sent = 0; sent < bytes;) {
    const n = Math.min(chunk.length, bytes - sent);
    sent += await conn.write(chunk.subarray(0, n));
  }
  await receiving;
  const elapsed = performance.now() - started;
  conn.close();
  listener.close();
  return elapsed;
}

/** Milliseconds to generate `elements` field elements with the protocol's generator. */
async function randomnessMs(elements: number): Promise<number> {
  const started = performance.now();
  const stream = await FieldStream.random();
  const buffer = new Float64Array(1 << 16);
  for (let done = 0; done < elements; done += buffer.length) {
    await stream.fill(buffer.subarray(0, Math.min(buffer.length, elements - done)));
  }
  return performance.now() - started;
}

/**
 * The fewest PRG elements a round needs: one expansion per pair of peers
 * (either end's; both ends expand it in practice), and in threshold rounds a
 * self mask per peer, expanded again by the hospital for every survivor.
 */
function neededRandomness(c: Config): number {
  const pairs = ((c.peers * (c.peers - 1)) / 2) * c.dimension;
  return c.threshold ? pairs + 2 * c.peers * c.dimension : pairs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function baselineRss(): Promise<number> {
  const [deno, ...rest] = cliCommand();
  const args = rest.slice(0, rest.length - 1); // drop main.ts
  const out = await new Deno.Command(deno!, {
    args: [...args, new URL("./baseline.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).peakRssBytes;
}

/** Runs one simulate row through `sumshare simulate`'s own code; refuses a wrong result. */
async function runSimulate(row: SimulateRow, seed: number): Promise<SimulationReport> {
  const parsed = parseSimulateOptions([
    "--peers",
    String(row.peers),
    "--seed",
    String(seed),
    ...(row.dimension > 1 ? ["--query", `vector:${row.dimension}`] : []),
    ...(row.threshold ? ["--threshold", String(row.threshold)] : []),
    ...(row.dropout ? ["--dropout", String(row.dropout)] : []),
    ...(row.neighbors !== undefined ? ["--neighbors", String(row.neighbors)] : []),
  ]);
  if (parsed === "help") throw new Error("unreachable: no --help given");
  const report = await simulate(parsed);
  if (!report.match || !report.asPlanned) {
    throw new Error(`simulate ${JSON.stringify(row)} did not match: ${JSON.stringify(report)}`);
  }
  return report;
}

/** The simulate rows' table, with the same run's per-neighbour cryptography as the limit. */
async function simulateTable(): Promise<string[]> {
  const costs = await measurePrimitives();
  const cores = navigator.hardwareConcurrency || 1;
  const lines = [
    "",
    `simulate rows (complete graph unless marked sparse; ${cores} cores; median of ${SIMULATE_RUNS} run(s)); ` +
    `per-call CPU in this run: certificate check ${costs.certificateCheck.toFixed(2)} ms ` +
    `(of it the policy ${costs.certificatePolicy.toFixed(2)} ms), ECDSA verify ${
      costs.ecdsaVerify.toFixed(2)
    } ms, ECDH ${costs.ecdhDerive.toFixed(2)} ms, pairwise seed ${
      costs.pairwiseSeed.toFixed(2)
    } ms, key import ${costs.importPublicKey.toFixed(2)} ms`,
    "",
    "| config | START→result | phases (ms) | bytes/peer | CPU hospital | CPU/peer (spec's least crypto) | peak RSS hospital / worker | limit (crypto + randomness) | ratio |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  console.log(lines.join("\n"));
  for (const row of simulateRows) {
    const runs: SimulationReport[] = [];
    for (let r = 0; r < SIMULATE_RUNS; r++) runs.push(await runSimulate(row, 1000 + r));
    const m = runs.sort((a, b) => a.startToResultMs - b.startToResultMs)[
      Math.floor(runs.length / 2)
    ]!;
    // Every peer's least cryptography, spread over the cores, and the PRG work.
    // A sparse peer works with its K neighbours only; the complete graph's with N − 1.
    const threshold = row.neighbors === undefined ? row.threshold : m.threshold;
    const perPeer = Math.min(row.peers - 1, m.neighbors) *
      perNeighbourMs(costs, threshold !== undefined);
    const cryptoMs = (row.peers * perPeer) / cores;
    const random = await randomnessMs(
      neededRandomness({
        peers: row.peers,
        dimension: row.dimension,
        ...(threshold ? { threshold } : {}),
      }),
    );
    const limit = cryptoMs + random;
    const label = `simulate N=${row.peers}, D=${
      row.dimension === 1 ? 1 : `2^${Math.log2(row.dimension)}`
    }, ${threshold ? `T=${threshold}` : "n-of-n"}${
      row.dropout ? `, ${m.dropouts.count} dropouts (${row.dropout * 100} %)` : ""
    }, K=${m.neighbors}${row.neighbors === undefined ? "" : " (sparse)"}`;
    const phases = Object.entries(m.phases).map(([p, ms]) => `${p} ${ms.toFixed(0)}`).join(", ");
    const rss = (x: number | null) => x === null ? "?" : `${(x / MiB).toFixed(0)} MiB`;
    const line = [
      label,
      `${m.startToResultMs.toFixed(0)} ms`,
      phases,
      `${(m.bytesPerPeer / 1024).toFixed(1)} KiB`,
      m.hospitalCpuMs === null ? "?" : `${m.hospitalCpuMs.toFixed(0)} ms`,
      `${m.peerCpuMs.toFixed(0)} ms (${perPeer.toFixed(0)} ms)`,
      `${rss(m.hospitalPeakRss)} / ${rss(m.workerPeakRss)}`,
      `${cryptoMs.toFixed(0)} + ${random.toFixed(0)} = ${limit.toFixed(0)} ms`,
      `${(m.startToResultMs / limit).toFixed(2)}×`,
    ].join(" | ").replace(/^/, "| ") + " |";
    console.log(line);
    lines.push(line);
  }
  return lines;
}

const dir = await Deno.makeTempDir({ prefix: "sumshare-bench-" });
const release = cleanUpOnInterrupt(() => removeDir(dir));
try {
  await writeConsortium(dir, await createConsortium(["hospital", ...names(50)]));
  // Warm up the TLS and crypto paths so the limit is not charged for first use.
  await tlsTransferMs(dir, MiB);
  await randomnessMs(1 << 16);
  const baseline = await baselineRss();
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
    /model name\s*:\s*(.*)/,
  )?.[1];
  const lines = [
    `sumshare benchmark, ${new Date().toISOString().slice(0, 10)}; Deno ${Deno.version.deno}; ` +
    `${navigator.hardwareConcurrency} cores${
      cpu ? `, ${cpu}` : ""
    }; process rows: median of ${RUNS} run(s)`,
    `runtime baseline (Deno with sumshare loaded): ${(baseline / MiB).toFixed(1)} MiB peak RSS`,
    "",
    "| config | START→result | bytes/peer | bytes total | expansion | peak RSS/peer (over baseline) | limit (TLS + randomness) | ratio |",
    "|---|---|---|---|---|---|---|---|",
  ];
  if (configs.length > 0) console.log(lines.join("\n"));
  else lines.splice(2);
  /** Peak RSS per peer of this run's D = 1 rows, by round size. */
  const scalarPeak = new Map<number, number>();
  for (const config of configs) {
    const inputs = config.dimension > 1
      ? await writeInputs(dir, config.peers, config.dimension)
      : undefined;
    const runs: Measured[] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await runRound(dir, config, inputs));
    const m = runs.sort((a, b) =>
      a.startToResultMs - b.startToResultMs
    )[Math.floor(runs.length / 2)]!;
    const tlsRuns: number[] = [];
    for (let r = 0; r < 3; r++) tlsRuns.push(await tlsTransferMs(dir, m.totalBytes));
    const tls = median(tlsRuns);
    const random = await randomnessMs(neededRandomness(config));
    const limit = tls + random;
    const clear = config.peers * config.dimension * 8;
    const vectorBytes = config.dimension * 8;
    const label = `N=${config.peers}, D=${
      config.dimension === 1 ? 1 : `2^${Math.log2(config.dimension)}`
    }${
      config.threshold
        ? `, T=${config.threshold}${config.dropout ? ", one dropout" : ""}`
        : ", n-of-n"
    }`;
    if (config.dimension === 1) scalarPeak.set(config.peers, m.peakPeerRss);
    // Against the bare runtime, and (for vectors) against a peer of the same
    // round size with D = 1 in this run: what the vector itself costs.
    const overScalar = scalarPeak.get(config.peers);
    const memory = `${(m.peakPeerRss / MiB).toFixed(1)} MiB (+${
      ((m.peakPeerRss - baseline) / MiB).toFixed(1)
    } MiB${
      config.dimension > 1
        ? ` = ${((m.peakPeerRss - baseline) / vectorBytes).toFixed(2)}× vector` +
          (overScalar === undefined
            ? ""
            : `; ${((m.peakPeerRss - overScalar) / vectorBytes).toFixed(2)}× over D=1`)
        : ""
    })`;
    const row = [
      label,
      `${m.startToResultMs.toFixed(0)} ms`,
      `${(m.perPeerBytes / 1024).toFixed(1)} KiB`,
      `${(m.totalBytes / MiB).toFixed(2)} MiB`,
      `${(m.totalBytes / clear).toFixed(3)}×`,
      memory,
      `${tls.toFixed(0)} + ${random.toFixed(0)} = ${limit.toFixed(0)} ms`,
      `${(m.startToResultMs / limit).toFixed(2)}×`,
    ].join(" | ").replace(/^/, "| ") + " |";
    console.log(row);
    lines.push(row);
  }
  if (configs.length === 0) console.log(lines.join("\n"));
  if (simulateRows.length > 0) lines.push(...await simulateTable());
  if (flags.out) await Deno.writeTextFile(flags.out, lines.join("\n") + "\n");
} finally {
  await removeDir(dir);
  release();
}
