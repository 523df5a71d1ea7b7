/**
 * Each data owner's policy, enforced by its own agent whatever the hospital
 * asks: query kinds a variable answers (n-of-n: a clear refusal; threshold:
 * the others finish), the most histogram bins, the fewest contributors.
 * The hospital hears only "refused by policy".
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import { ask, auditOf, resultOf, type Site, startAgents, startService } from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "east"];

function errorOf(answer: { code: number; json: Record<string, unknown> }): string {
  assert.equal(answer.code, 1, `expected a failed round: ${JSON.stringify(answer.json)}`);
  return String((answer.json["error"] as { message: string }).message);
}

Deno.test("service: agents refuse what their policy does not allow, saying only 'refused by policy'", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-service-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    // Every site also holds "age" (the same column, read again), with its own floor at east.
    const age = (column: string, extra = "") =>
      `[data.age]\nfile = "NAME.csv"\ncolumn = "${column}"\nscale = 1\nmax = 400\n${extra}`;
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["180.5", "220.0"] },
      { name: "south", column: "c", cells: ["199.9", "201.0"] },
      { name: "east", column: "mg", cells: ["150.0", "390.0"] },
    ];
    sites[0]!.more = age("chol").replace("NAME", "north");
    sites[1]!.more = age("c").replace("NAME", "south");
    sites[2]!.more = age("mg", "min_contributors = 4").replace("NAME", "east");
    // East's chol answers no histogram.
    sites[2]!.variable = 'allow = ["count", "sum", "mean"]';
    await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);

    // n-of-n: east's refusal is a clear failure of the round.
    const nofn = errorOf(await ask(processes, control, ["histogram", "chol", "0:400:4"]));
    assert.match(nofn, /east: input refused: refused by policy/);
    assert.doesNotMatch(nofn, /histogram queries|allow/, "the hospital learns only the refusal");

    // Threshold: the others finish without east.
    const threshold = resultOf(
      await ask(processes, control, ["--threshold", "2", "histogram", "chol", "0:400:4"]),
    );
    assert.deepEqual(threshold.contributors, ["north", "south"]);
    assert.deepEqual(threshold.result["histogram"], [0, 2, 2, 0]);

    // More bins than north and south allow (20).
    const bins = errorOf(await ask(processes, control, ["histogram", "age", "0:400:40"]));
    assert.match(bins, /north: input refused: refused by policy/);
    assert.match(bins, /south: input refused: refused by policy/);

    // East's age needs 4 contributors; there are 3 sites.
    const floor = errorOf(await ask(processes, control, ["count", "age"]));
    assert.match(floor, /east: input refused: refused by policy/);
    assert.doesNotMatch(floor, /floor|contributors/, "the hospital learns only the refusal");

    // East's audit log: each refusal with its rule, for the site's own operator.
    const refused = (await auditOf(dir, "east")).filter((e) => e["outcome"] === "refused");
    assert.deepEqual(refused.map((e) => e["variable"]), ["chol", "chol", "age", "age"]);
    assert.match(String(refused[0]!["reason"]), /does not answer histogram/);
    assert.match(String(refused[1]!["reason"]), /does not answer histogram/);
    assert.match(String(refused[2]!["reason"]), /40 histogram bins/);
    assert.match(String(refused[3]!["reason"]), /fewer than age's 4/);
  });
});
