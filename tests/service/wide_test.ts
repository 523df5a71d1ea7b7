/**
 * Real data at its real size over the service: the field is wide enough
 * because the service builds the layout from the ranges the agents
 * declared, so a variance of values up to 10^6 over 10^5 rows per site is
 * exact (the sum of squares takes two residues), and a vector longer than a
 * chunk, whose totals pass 2^53, arrives whole in `--result FILE`. Both are
 * compared with exact BigInt computations over the sites' own files.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { P_BIG } from "../../lib/field.ts";
import { CHUNK_ELEMENTS } from "../../lib/wire/messages.ts";
import { CliProcess, makePki, mulberry32, scenario } from "../helpers.ts";
import { nearestNumber } from "../../lib/service/report.ts";
import { ask, ratio, resultOf, startAgent, startService, waitForAudit } from "./helpers.ts";

const SITES = ["north", "south", "east"];

/** An agent config for one variable `x` read from `file`, with `extra` TOML for [data.x]. */
async function writeConfig(
  dir: string,
  pki: string,
  name: string,
  port: number,
  extra: string,
): Promise<string> {
  const path = join(dir, `${name}.toml`);
  await Deno.writeTextFile(
    path,
    `name = "${name}"
hospital = "127.0.0.1:${port}"
hospital_name = "hospital"
certs = "${pki}"

[data.x]
${extra}

[policy]
allow = ["variance", "vector"]
min_contributors = 2
`,
  );
  return path;
}

/** Whether `v` is the binary64 nearest to numerator/denominator (within half an ulp). */
function nearest(v: number, numerator: bigint, denominator: bigint): boolean {
  // v = m · 2^e exactly; ulp(v) = 2^(e_v − 52) for a normal v.
  const exponent = Math.floor(Math.log2(v));
  const shift = 52 - exponent + 2;
  const scaled = BigInt(v * 2 ** shift); // exact: v has 53 significant bits
  // |v − n/d| ≤ ulp/2  ⇔  |scaled·d − n·2^shift| ≤ 2^(shift + exponent − 52 − 1)·d
  const error = scaled * denominator - numerator * (1n << BigInt(shift));
  const bound = (1n << BigInt(shift + exponent - 53)) * denominator;
  return (error < 0n ? -error : error) <= bound;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

Deno.test("service: variance of values up to 10^6 over 10^5 rows per site is exact; the service chose residues from the declared ranges", async () => {
  const pki = await makePki(["hospital", ...SITES]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-wide-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const ROWS = 100_000;
    const MAX = 1_000_000;
    let sum = 0n;
    let squares = 0n;
    for (const [s, name] of SITES.entries()) {
      const random = mulberry32(100 + s);
      const values = Array.from({ length: ROWS }, () => Math.floor(random() * (MAX + 1)));
      values[0] = MAX; // the declared bound is reached
      for (const v of values) {
        sum += BigInt(v);
        squares += BigInt(v) * BigInt(v);
      }
      await Deno.writeTextFile(
        join(dir, `${name}.csv`),
        `id,x_${name}\n${values.map((v, i) => `${i},${v}`).join("\n")}\n`,
      );
      const config = await writeConfig(
        dir,
        pki,
        name,
        port,
        `file = "${name}.csv"\ncolumn = "x_${name}"\nmax = ${MAX}\nmax_rows = ${ROWS}`,
      );
      startAgent(processes, name, config);
    }
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);

    const answer = resultOf(await ask(processes, control, ["variance", "x"]));
    const json = answer as unknown as Record<string, unknown>;
    const n = BigInt(3 * ROWS);
    const exact = n * squares - sum * sum;
    const g = gcd(exact, n * n);
    assert.equal(answer.result["count"], 3 * ROWS);
    assert.equal(String(answer.result["sum"]), sum.toString());
    // Σx² is past 2^53: exact as a decimal string, never a rounded number.
    assert.ok(squares > BigInt(Number.MAX_SAFE_INTEGER));
    assert.equal(answer.result["sumOfSquares"], squares.toString());
    assert.equal(answer.result["varianceExact"], `${exact / g}/${n * n / g}`);
    assert.ok(
      nearest(answer.result["variance"] as number, exact, n * n),
      `variance ${answer.result["variance"]} is not the nearest binary64 to ${exact}/${n * n}`,
    );
    // The layout from the declared ranges: the sum of squares (3 · 10^5 · 10^12 > p1) takes
    // two residues, the sum and the count one each.
    const bounds = [BigInt(ROWS * MAX), BigInt(ROWS) * BigInt(MAX) ** 2n, BigInt(ROWS)];
    const residues = bounds.map((b) => 3n * b < P_BIG ? 1 : 2);
    assert.deepEqual(residues, [1, 2, 1]);
    assert.deepEqual(json["residues"], residues);
    assert.equal(json["elements"], 4);
    assert.equal(json["maxRows"], ROWS);
    assert.equal(json["max"], String(MAX));
    // Each site's record of the release holds the same exact statistics.
    for (const name of SITES) {
      const [entry] = await waitForAudit(dir, name, "done", 1);
      const released = entry!["released"] as { statistics: Record<string, unknown> };
      assert.deepEqual(released.statistics, answer.result, name);
    }
  });
});

Deno.test("service: a vector longer than a chunk, totals past 2^53, every value in --result FILE", async () => {
  const pki = await makePki(["hospital", ...SITES]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-vector-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const D = CHUNK_ELEMENTS + 4_464; // 70,000: two chunks even without residues
    const MAX = 4_000_000_000_000_000; // 3 · MAX > p1: each total takes two residues
    const totals = new Array<bigint>(D).fill(0n);
    for (const [s, name] of SITES.entries()) {
      const random = mulberry32(200 + s);
      const v = Array.from(
        { length: D },
        () => Math.floor(random() * 4_000_000) * 1_000_000_000 + Math.floor(random() * 1e9),
      );
      v[0] = MAX; // 3 · MAX = 1.2 · 10^16 > 2^53
      v.forEach((x, i) => totals[i]! += BigInt(x));
      await Deno.writeTextFile(join(dir, `${name}.json`), JSON.stringify(v));
      const config = await writeConfig(
        dir,
        pki,
        name,
        port,
        `file = "${name}.json"\nmax = ${MAX}\ndimension = ${D}`,
      );
      startAgent(processes, name, config);
    }
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);

    const file = join(dir, "sum.json");
    const answer = resultOf(await ask(processes, control, ["--result", file, "vector", "x"]));
    const json = answer as unknown as Record<string, unknown>;
    assert.deepEqual(json["residues"], [2]);
    assert.equal(json["elements"], 2 * D);
    const written = JSON.parse(await Deno.readTextFile(file)) as { result: { vector: unknown[] } };
    assert.equal(written.result.vector.length, D);
    const expected = totals.map((t) => t.toString());
    assert.deepEqual(written.result.vector.map(String), expected);
    assert.equal(written.result.vector[0], "12000000000000000", "past 2^53: a string, exact");
    assert.deepEqual((answer.result["vector"] as unknown[]).map(String), expected);
    // The record is too long for a frame: each site keeps the digest, signed, without values.
    for (const name of SITES) {
      const [entry] = await waitForAudit(dir, name, "done", 1);
      const released = entry!["released"] as Record<string, unknown>;
      assert.ok(released, name);
      assert.equal(released["statistics"], undefined);
      assert.equal(released["resultDigest"], entry!["resultDigest"]);
    }
  });
});

Deno.test("report: a variance is the binary64 nearest the exact fraction, one rounding, ties to even", () => {
  const random = mulberry32(7);
  const big = () =>
    BigInt(Math.floor(random() * 2 ** 32)) * 2n ** 32n + BigInt(Math.floor(random() * 2 ** 32));
  for (let i = 0; i < 2_000; i++) {
    const n = big() * big() + 1n;
    const d = BigInt(Math.floor(random() * 2 ** 40)) + 1n;
    assert.equal(nearestNumber(n, d), ratio(n, d), `${n}/${d}`);
  }
  // Past 2^53: a midpoint goes to the even neighbour, anything above it up.
  const two53 = 2n ** 53n;
  assert.equal(nearestNumber(two53 + 1n, 1n), 2 ** 53);
  assert.equal(nearestNumber(2n * two53 + 2n, 2n), 2 ** 53);
  assert.equal(nearestNumber(two53 + 3n, 1n), 2 ** 53 + 4);
  assert.equal(nearestNumber((two53 + 1n) * 3n + 1n, 3n), 2 ** 53 + 2);
  assert.equal(nearestNumber(1n, 3n), 1 / 3);
  assert.equal(nearestNumber(0n, 5n), 0);
});
