/**
 * End to end on a small real-looking data set (tests/data: three clinics'
 * patient tables, 300 rows): each clinic is a peer process reading its own CSV
 * file; the hospital's mean, variance and histogram must equal a plain
 * computation over all three files. Also vectors, in both modes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makePki, removeDir, ROOT, scenario } from "./helpers.ts";
import { finishStar, runRound, startStar } from "./scenarios.ts";

const CLINICS = ["east", "north", "south"];
const file = (clinic: string) => join(ROOT, "tests", "data", `clinic-${clinic}.csv`);

/** A column of every clinic's table, read plainly (no quoted commas in these files). */
async function column(name: string): Promise<number[]> {
  const values: number[] = [];
  for (const clinic of CLINICS) {
    const [header, ...rows] = (await Deno.readTextFile(file(clinic))).trim().split("\n");
    const index = header!.split(",").indexOf(name);
    for (const row of rows) values.push(Number(row.split(",")[index]));
  }
  return values;
}

/** Runs one round: the hospital with `hospitalArgs`, each clinic with `peerArgs(clinic)`. */
async function round(
  dir: string,
  hospitalArgs: string[],
  peerArgs: (clinic: string) => string[],
): Promise<Record<string, unknown>> {
  const summary = await runRound(dir, hospitalArgs, CLINICS.map((c) => [c, peerArgs(c)]));
  return summary["result"] as Record<string, unknown>;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]) => mean(xs.map((x) => (x - mean(xs)) ** 2));
const near = (a: unknown, b: number) =>
  typeof a === "number" && Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b));

Deno.test("clinic data: mean, variance and histogram equal a plain computation", async () => {
  const dir = await makePki(["hospital", ...CLINICS]);
  try {
    const ages = await column("age");
    const pressure = await column("systolic_bp");
    const weights = await column("weight_kg");
    assert.equal(ages.length, 300);

    const m = await round(
      dir,
      ["--query", "mean", "--max", "120", "--max-rows", "500"],
      (c) => ["--input", file(c), "--column", "age"],
    );
    assert.equal(m["count"], 300);
    assert.equal(m["sum"], ages.reduce((a, b) => a + b, 0));
    assert.ok(near(m["mean"], mean(ages)), `mean ${m["mean"]}`);

    const v = await round(
      dir,
      ["--query", "variance", "--max", "300", "--max-rows", "500", "--threshold", "2"],
      (c) => ["--input", file(c), "--column", "systolic_bp"],
    );
    assert.ok(
      near(v["variance"], variance(pressure)),
      `variance ${v["variance"]} vs ${variance(pressure)}`,
    );
    assert.ok(near(v["mean"], mean(pressure)));

    const h = await round(
      dir,
      ["--query", "histogram:0:100:10", "--max-rows", "500"],
      (c) => ["--input", file(c), "--column", "age"],
    );
    const expected = new Array<number>(10).fill(0);
    for (const a of ages) expected[a === 100 ? 9 : Math.floor(a / 10)]!++;
    assert.deepEqual(h["histogram"], expected);
    assert.equal(expected[9]! >= 3, true, "ages 90 and 100 (HIGH) land in the last bin");

    // Decimals: weights have one decimal place.
    const w = await round(dir, [
      "--query",
      "mean",
      "--scale",
      "1",
      "--max",
      "250",
      "--max-rows",
      "500",
    ], (c) => ["--input", file(c), "--column", "weight_kg", "--scale", "1"]);
    assert.ok(near(w["mean"], mean(weights)), `weight mean ${w["mean"]} vs ${mean(weights)}`);
    assert.ok(near(w["sum"], Math.round(weights.reduce((a, b) => a + b, 0) * 10) / 10));
  } finally {
    await removeDir(dir);
  }
});

Deno.test("vectors add element-wise through real processes, in both modes", async () => {
  const dir = await makePki(["hospital", ...CLINICS]);
  try {
    const vectors = CLINICS.map((_, i) =>
      Array.from({ length: 6 }, (_, j) => (i + 1) * 1000 + j * 7)
    );
    const expected = vectors[0]!.map((_, j) => vectors.reduce((a, v) => a + v[j]!, 0));
    for (const mode of [[], ["--threshold", "2"]]) {
      const r = await round(
        dir,
        ["--query", "vector:6", "--max", "100000", ...mode],
        (c) => ["--value", vectors[CLINICS.indexOf(c)]!.join(",")],
      );
      assert.deepEqual(r["vector"], expected);
    }
    // A JSON file of the wrong length is refused before anything is sent.
    const bad = join(dir, "short.json");
    await Deno.writeTextFile(bad, "[1, 2, 3]");
    await scenario([], async (processes) => {
      const peers = [["east", ["--input", bad]], ["north", ["--value", "1,2,3,4,5,6"]]] as const;
      const end = await finishStar(
        await startStar(processes, dir, peers, {
          json: false,
          hospitalArgs: ["--query", "vector:6"],
        }),
      );
      const e = end.peers.get("east")!;
      assert.equal(e.code, 1);
      assert.match(e.stderr, /the input has 3 numbers; the query needs a vector of 6/);
      assert.equal(end.hospital.code, 1);
      assert.equal(end.peers.get("north")!.code, 1);
      assert.match(end.hospital.stderr, /^east refused: /m);
    });
  } finally {
    await removeDir(dir);
  }
});
