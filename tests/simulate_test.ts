/**
 * `sumshare simulate` (lib/simulate/): real rounds of many peers in worker
 * processes, each over its own mutual-TLS connection to a hospital process,
 * with dropouts cut mid-round; and the pieces it trusts for its verdict (the
 * plaintext, the matcher, the dropout plan).
 */

import assert from "node:assert/strict";
import { simulateCommand } from "../lib/simulate/main.ts";
import { parseQuery } from "../lib/query.ts";
import {
  peerValues,
  plaintextResult,
  plaintextTotals,
  resultMatches,
} from "../lib/simulate/data.ts";
import { checkPlan, dropoutPlan, type PeerEnd, PHASES } from "../lib/simulate/plan.ts";
import { graphParameters } from "../lib/protocol/graph_parameters.ts";

async function simulate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await simulateCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("simulate: a threshold round with dropouts matches the plaintext over the survivors", async () => {
  // 12 peers in 2 workers, T = 7; a quarter (3) vanish at the share phase, so 9 survive.
  const run = await simulate([
    "--peers",
    "12",
    "--workers",
    "2",
    "--threshold",
    "7",
    "--dropout",
    "0.25",
    "--dropout-at",
    "share",
    "--seed",
    "7",
    "--json",
  ]);
  assert.equal(run.code, 0, run.err);
  const report = JSON.parse(run.out);
  assert.equal(report.peers, 12);
  assert.equal(report.threshold, 7);
  assert.equal(report.neighbors, 11);
  assert.deepEqual(report.dropouts, { count: 3, byPhase: { share: 3 } });
  assert.equal(report.survivors, 9);
  assert.equal(report.match, true);
  assert.equal(report.asPlanned, true);
  assert.deepEqual(Object.keys(report.phases), [
    "startup",
    "connect",
    "advertise",
    "confirm",
    "share",
    "input",
    "consistency",
    "unmask",
    "result",
  ]);
  for (const key of ["startToResultMs", "bytes", "hospitalCpuMs", "peerCpuMs", "hospitalPeakRss"]) {
    assert.ok(typeof report[key] === "number" && report[key] > 0, `${key}: ${report[key]}`);
  }
  // The plaintext over the nine survivors, recomputed here: the report's is not taken on trust.
  assert.equal(typeof report.result.sum, "number");
  assert.deepEqual(report.result, report.plaintext);
  // This run's folder (other runs on the machine may have their own at the same time).
  const dir = /in (\S+sumshare-simulate-\S+) \(removed at the end\)/.exec(run.err)?.[1];
  assert.ok(dir, `simulate named its folder: ${run.err}`);
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound, "the throwaway PKI was not removed");
});

Deno.test("simulate: dropouts after the masked input still count, and n-of-n without dropouts", async () => {
  const late = await simulate([
    "--peers",
    "8",
    "--workers",
    "2",
    "--threshold",
    "5",
    "--dropout",
    "0.25",
    "--dropout-at",
    "unmask",
    "--seed",
    "11",
    "--json",
  ]);
  assert.equal(late.code, 0, late.err);
  const lateReport = JSON.parse(late.out);
  // Gone before revealing, but their masked inputs are in the announced survivors set.
  assert.equal(lateReport.survivors, 8);
  assert.equal(lateReport.match, true);

  // A phase picked from the seed for each dropout (the default): the survivors are the plan's.
  const mixed = await simulate([
    "--peers",
    "10",
    "--threshold",
    "6",
    "--dropout",
    "0.3",
    "--seed",
    "21",
    "--json",
  ]);
  assert.equal(mixed.code, 0, mixed.err);
  const mixedReport = JSON.parse(mixed.out);
  const plan = dropoutPlan(21, 10, 3, { phases: PHASES });
  const gone = plan.filter((p) =>
    p === "advertise" || p === "confirm" || p === "share" ||
    p === "input"
  ).length;
  assert.equal(mixedReport.survivors, 10 - gone);
  assert.equal(mixedReport.match, true);

  const run = await simulate(["--peers", "6", "--workers", "2", "--seed", "3"]);
  assert.equal(run.code, 0, run.err);
  assert.match(run.out, /6 peers in 2 workers, n-of-n/);
  assert.match(run.out, /survivors: 6 \(expected 6\)/);
  assert.match(run.out, /^match: yes$/m);
  const plain = plaintextTotals(3, [0, 1, 2, 3, 4, 5], parseQuery("sum", 0));
  assert.match(run.out, new RegExp(`^result: +sum ${plain.sum}$`, "m"));
});

Deno.test("simulate: a sparse round (--neighbors auto) with dropouts matches over the survivors", async () => {
  // 40 peers; auto sizes K and T for 40 (5 % colluders, 5 % dropouts); 10 % vanish.
  const run = await simulate([
    "--peers",
    "40",
    "--workers",
    "2",
    "--neighbors",
    "auto",
    "--dropout",
    "0.1",
    "--seed",
    "11",
    "--json",
  ]);
  assert.equal(run.code, 0, run.err);
  const report = JSON.parse(run.out);
  const expected = graphParameters(40, { colluders: 0.05, dropouts: 0.05 });
  assert.equal(report.graph, "sparse");
  assert.equal(report.neighbors, expected.neighbors);
  assert.equal(report.threshold, expected.threshold);
  assert.ok(report.neighbors < 39);
  assert.equal(report.dropouts.count, 4);
  assert.equal(report.match, true);
  assert.equal(report.asPlanned, true);
  assert.equal(report.survivors, report.expectedSurvivors);
});

Deno.test("simulate: variance and histogram rounds match on every key the hospital reports (review 15, F2)", async () => {
  // The hospital's report adds the sum of squares, the exact and sample
  // variances, both standard deviations and the bin edges; the matcher
  // refused every such round as a mismatch, so it checked nothing there.
  for (const query of ["variance", "histogram:0:1048576:5"]) {
    const run = await simulate(["--peers", "6", "--workers", "1", "--query", query, "--json"]);
    assert.equal(run.code, 0, `${query}: ${run.err}`);
    const report = JSON.parse(run.out);
    assert.equal(report.match, true, query);
    const keys = query === "variance"
      ? ["sumOfSquares", "varianceExact", "sampleVariance", "standardDeviation"]
      : ["binEdges"];
    for (const key of keys) assert.ok(key in report.result, `${query}: ${key}`);
  }
});

Deno.test("simulate: refuses what it cannot run, before starting anything", async () => {
  const cases: [string[], RegExp][] = [
    [["--peers", "10", "--neighbors", "5"], /--neighbors must be even/],
    [["--peers", "10", "--neighbors", "10"], /needs at least 11 peers/],
    [["--peers", "40", "--neighbors", "8", "--threshold", "4"], /more than half a neighbourhood/],
    [["--peers", "10001", "--neighbors", "auto"], /--peers/],
    [["--peers", "501"], /--peers/],
    [["--peers", "10", "--dropout", "0.2"], /--dropout needs --threshold/],
    [["--peers", "10", "--threshold", "8", "--dropout", "0.3"], /fewer than the threshold 8/],
    [["--peers", "10", "--threshold", "5"], /more than half/],
    [
      ["--peers", "10", "--threshold", "6", "--dropout", "0.1", "--dropout-at", "later"],
      /--dropout-at/,
    ],
    [["--peers", "10", "--dropout-at", "share"], /goes with --dropout/],
    [["--peers", "10", "--dropout", "1.5", "--threshold", "6"], /Invalid --dropout/],
  ];
  for (const [args, message] of cases) {
    const run = await simulate(args);
    assert.equal(run.code, 2, args.join(" "));
    assert.match(run.err, message);
  }
});

Deno.test("simulate: the matcher refuses any difference from the plaintext", () => {
  const seed = 42;
  for (const spec of ["sum", "count", "mean", "variance", "histogram:0:100:5", "vector:4"]) {
    const query = parseQuery(spec, 0);
    const totals = plaintextTotals(seed, [0, 2, 3], query);
    const exact = plaintextResult(query, totals);
    assert.ok(resultMatches(query, exact, totals), spec);
    // The same totals as decimal strings (how the hospital prints totals past 2^53) match too.
    const [key, value] = Object.entries(exact)[0]!;
    const asText = Array.isArray(value) ? value.map(String) : String(value);
    assert.ok(resultMatches(query, { ...exact, [key]: asText }, totals), `${spec} as text`);
    // One off in the first total, a missing key, an extra key: each is a mismatch.
    const offByOne = Array.isArray(value)
      ? [Number(value[0]) + 1, ...value.slice(1)]
      : Number(value) + 1;
    assert.ok(!resultMatches(query, { ...exact, [key]: offByOne }, totals), `${spec} off by one`);
    const { [key]: _dropped, ...missing } = exact;
    assert.ok(!resultMatches(query, missing, totals), `${spec} missing ${key}`);
    assert.ok(!resultMatches(query, { ...exact, extra: 1 }, totals), `${spec} extra key`);
    // Every derived key counts too (review 15, F2): one changed is a mismatch.
    for (
      const derived of [
        "mean",
        "variance",
        "sumOfSquares",
        "varianceExact",
        "sampleVariance",
        "standardDeviation",
        "sampleStandardDeviation",
        "binEdges",
      ]
    ) {
      if (!(derived in exact)) continue;
      assert.ok(
        !resultMatches(query, { ...exact, [derived]: "1/3" }, totals),
        `${spec} ${derived}`,
      );
    }
  }
  // Review 15, F3: the plaintext variance is the double nearest the exact
  // fraction. Seed 1's first 171 peers (328 rows) have a numerator past
  // 2^53; dividing the two rounded doubles gave 87475882294.03465, one ulp
  // off the nearest, which the hospital reports.
  {
    const query = parseQuery("variance", 0);
    const totals = plaintextTotals(1, Array.from({ length: 171 }, (_, i) => i), query);
    assert.equal(totals.count, 328n);
    const n = totals.count * totals.squares - totals.sum * totals.sum;
    assert.ok(n > 2n ** 53n);
    assert.equal(plaintextResult(query, totals)["variance"], 87475882294.03464);
  }
  // The plaintext is the data's own sum, not the product's encoding of it.
  const query = parseQuery("sum", 0);
  const expected = [0, 2, 3].reduce(
    (a, i) => a + peerValues(seed, i, query).reduce((x, y) => x + y),
    0,
  );
  assert.equal(plaintextTotals(seed, [0, 2, 3], query).sum, BigInt(expected));
});

Deno.test("simulate: the dropout plan is the count asked for, replayable from the seed", () => {
  const plan = dropoutPlan(5, 100, 10, { phases: PHASES });
  assert.equal(plan.filter((p) => p !== undefined).length, 10);
  assert.deepEqual(dropoutPlan(5, 100, 10, { phases: PHASES }), plan);
  assert.notDeepEqual(dropoutPlan(6, 100, 10, { phases: PHASES }), plan);
  const fixed = dropoutPlan(5, 100, 10, { at: "input", phases: PHASES });
  assert.ok(fixed.every((p) => p === undefined || p === "input"));
  // Peers get their own data streams.
  const query = parseQuery("vector:8", 0);
  assert.notDeepEqual(peerValues(1, 0, query), peerValues(1, 1, query));
  assert.deepEqual(peerValues(1, 0, query), peerValues(1, 0, query));
});

Deno.test("simulate: a round that did not go as planned is not a pass", () => {
  const names = ["a", "b", "c", "d"];
  const plan = [undefined, "share", undefined, "unmask"] as const;
  const ends: PeerEnd[] = [
    { index: 0, name: "a", status: "done" },
    { index: 1, name: "b", status: "dropped", droppedAt: "share" },
    { index: 2, name: "c", status: "done" },
    { index: 3, name: "d", status: "dropped", droppedAt: "unmask" },
  ];
  // d vanished after its masked input: it is still summed.
  const good = checkPlan(plan, names, ends, ["d", "a", "c"]);
  assert.deepEqual(good, { expected: ["a", "c", "d"], unexpected: [], asPlanned: true });
  // The hospital left out a peer that should count, or summed one that dropped.
  assert.equal(checkPlan(plan, names, ends, ["a", "c"]).asPlanned, false);
  assert.equal(checkPlan(plan, names, ends, ["a", "b", "c", "d"]).asPlanned, false);
  // A stayer that failed, a dropout cut at another phase, a peer that never reported.
  const failed = ends.map((e) => e.index === 2 ? { ...e, status: "failed" as const } : e);
  assert.deepEqual(checkPlan(plan, names, failed, ["a", "c", "d"]).unexpected, [failed[2]]);
  const early = ends.map((e) => e.index === 3 ? { ...e, droppedAt: "input" as const } : e);
  assert.equal(checkPlan(plan, names, early, ["a", "c", "d"]).asPlanned, false);
  assert.equal(checkPlan(plan, names, ends.slice(0, 3), ["a", "c", "d"]).asPlanned, false);
});
