/**
 * No answers by difference in threshold rounds: once a variable's data
 * version was answered over {east, north, south}, a threshold round of the
 * same question in which east drops out (its set would be {north, south},
 * and the difference east's value) is refused by the remaining agents at
 * SURVIVORS, before any of them signs the set; the same question over the
 * identical set is answered again.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import {
  ask,
  auditOf,
  resultOf,
  type Site,
  startAgent,
  startService,
  waitForAudit,
  writeCsv,
  writeSite,
} from "./helpers.ts";

Deno.test("service: a threshold round whose set lost a peer is refused by the others; the identical set is answered again", async () => {
  const pki = await makePki(["hospital", "north", "south", "east"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-difference-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["180.5", "220.0"] },
      { name: "south", column: "c", cells: ["199.9", "201.0"] },
      { name: "east", column: "mg", cells: ["150.0"] },
    ];
    const configs = new Map<string, string>();
    const agents = new Map<string, CliProcess>();
    for (const site of sites) {
      configs.set(site.name, await writeSite(dir, pki, site, port));
      agents.set(site.name, startAgent(processes, site.name, configs.get(site.name)!));
    }
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    const question = ["--threshold", "2", "sum", "chol"];
    const first = resultOf(await ask(processes, control, question));
    assert.deepEqual(first.contributors, ["east", "north", "south"]);

    // East's data file becomes a FIFO: its agent blocks reading it inside the next round,
    // and is killed there, so the round goes on without it.
    await Deno.remove(join(dir, "east.csv"));
    const fifo = await new Deno.Command("mkfifo", { args: [join(dir, "east.csv")] }).output();
    assert.ok(fifo.success, "mkfifo failed");
    const asking = ask(processes, control, question);
    // The second round over all three (the first one's line is the first match).
    await hospital.waitForLines(/round \S+: chol sum over east, north, south/, 2);
    agents.get("east")!.kill("SIGKILL");
    const refused = await asking;
    assert.equal(refused.code, 1, JSON.stringify(refused.json));
    assert.match(
      String((refused.json["error"] as { message: string }).message),
      /(north|south): refused by policy/,
    );
    for (const name of ["north", "south"]) {
      const [entry] = await waitForAudit(dir, name, "refused", 1);
      assert.match(String(entry!["reason"]), /another contributor set \(east, north, south\)/);
      const done = (await auditOf(dir, name)).filter((e) => e["outcome"] === "done");
      assert.deepEqual(done.map((e) => e["session"]), [first.session], `${name} answered once`);
    }

    // East back with its data: the identical set is answered again.
    await agents.get("east")!.finish(10_000);
    await Deno.remove(join(dir, "east.csv"));
    await writeCsv(dir, sites[2]!);
    startAgent(processes, "east", configs.get("east")!);
    await hospital.waitForLines(/east connected/, 2, 30_000);
    const again = resultOf(await ask(processes, control, question));
    assert.deepEqual(again.contributors, ["east", "north", "south"]);
    assert.equal(again.result["sum"], first.result["sum"]);
  });
});
