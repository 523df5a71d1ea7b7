/**
 * The standing consortium end to end: a serving hospital and three peer
 * agents as real processes over real mutual TLS, each site's CSV naming the
 * same variable's column its own way, questions asked through the Unix
 * control socket.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, mulberry32, scenario } from "../helpers.ts";
import { ask, plain, resultOf, type Site, startAgents, startService } from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "east"];

/** Rows of one decimal place in [100, 400], from a seeded generator. */
function cells(seed: number, rows: number): string[] {
  const random = mulberry32(seed);
  return Array.from({ length: rows }, () => (1000 + Math.floor(random() * 3001)) / 10)
    .map((v) => v.toFixed(1));
}

function scaled(cell: string): bigint {
  return BigInt(cell.replace(".", ""));
}

Deno.test("service: count, mean, variance and histogram over three agents equal a plain computation over all rows", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-service-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const sites: Site[] = [
      { name: "north", column: "cholesterol_mg_dl", cells: cells(1, 30) },
      { name: "south", column: "chol", cells: [...cells(2, 20), "NA", ""] },
      { name: "east", column: "Cholesterol", cells: cells(3, 25) },
    ];
    sites[1]!.variable = 'missing = "skip"';
    const { hospital, port } = await startService(processes, pki, control);
    await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    // Only the operator may ask: the socket is the owner's alone.
    assert.equal((await Deno.stat(control)).mode! & 0o777, 0o600);

    const all = sites.flatMap((s) => s.cells.filter((c) => c !== "NA" && c !== "").map(scaled));
    const expected = plain(all, { low: 0n, high: 4000n, count: 20 });
    const count = resultOf(await ask(processes, control, ["count", "chol"]));
    assert.equal(count.result["count"], expected.count);
    assert.deepEqual(count.contributors, ["east", "north", "south"]);
    const mean = resultOf(await ask(processes, control, ["mean", "chol"]));
    assert.equal(mean.result["mean"], expected.mean);
    assert.equal(mean.result["sum"], expected.sum);
    const variance = resultOf(await ask(processes, control, ["variance", "chol"]));
    assert.equal(variance.result["variance"], expected.variance);
    const histogram = resultOf(await ask(processes, control, ["histogram", "chol", "0:400:20"]));
    assert.deepEqual(histogram.result["histogram"], expected.histogram);
    // Each round was a fresh session.
    assert.equal(new Set([count, mean, variance, histogram].map((r) => r.session)).size, 4);
  });
});
