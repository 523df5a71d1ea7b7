/**
 * A standing service through its life: agents started before the hospital,
 * the hospital killed and restarted while they wait, a round that fails
 * because a peer dies mid-round followed by one that succeeds, a data file
 * changed between rounds, the same question over a smaller set refused by
 * the agents, and each agent's audit log.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import {
  ask,
  auditOf,
  freePort,
  resultOf,
  type Site,
  startAgent,
  startService,
  waitForAudit,
  writeCsv,
  writeSite,
} from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "east"];

function sumOf(cells: string[]): number {
  return Number(cells.reduce((a, c) => a + BigInt(c.replace(".", "")), 0n)) / 10;
}

Deno.test("service: agents started first reach the hospital; it is killed and restarted and the next ask works", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-service-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const port = freePort();
    const sites: Site[] = [
      { name: "north", column: "cholesterol_mg_dl", cells: ["180.5", "220.0"] },
      { name: "south", column: "chol", cells: ["199.9"] },
      { name: "east", column: "Cholesterol", cells: ["150.0", "160.1", "170.2"] },
    ];
    const agents = [];
    for (const site of sites) {
      agents.push(startAgent(processes, site.name, await writeSite(dir, pki, site, port)));
    }
    // Nobody listens yet: each agent says it will retry.
    for (const agent of agents) await agent.waitForLine(/cannot reach the hospital.*retrying/);
    const first = await startService(processes, pki, control, `127.0.0.1:${port}`);
    await first.hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    const expected = sumOf(sites.flatMap((s) => s.cells));
    assert.equal(resultOf(await ask(processes, control, ["sum", "chol"])).result["sum"], expected);

    first.hospital.kill("SIGKILL");
    await first.hospital.finish(10_000);
    for (const agent of agents) await agent.waitForLine(/lost the hospital; reconnecting/);
    // The killed service left its socket file behind: the new one replaces it.
    const second = await startService(processes, pki, control, `127.0.0.1:${port}`);
    await second.hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    const again = resultOf(await ask(processes, control, ["sum", "chol"]));
    assert.equal(again.result["sum"], expected);
    assert.deepEqual(again.contributors, ["east", "north", "south"]);
  });
});

Deno.test("service: a peer killed mid-round fails that round only; new data is read; a smaller set is refused; the audit log lists the rounds", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-service-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "cholesterol_mg_dl", cells: ["180.5", "220.0"] },
      { name: "south", column: "chol", cells: ["199.9", "201.0"] },
      { name: "east", column: "Cholesterol", cells: ["150.0"] },
    ];
    for (const site of sites.slice(0, 2)) {
      startAgent(processes, site.name, await writeSite(dir, pki, site, port));
    }
    // East's data file is a FIFO: its agent blocks reading it inside the round.
    const eastConfig = await writeSite(dir, pki, sites[2]!, port);
    await Deno.remove(join(dir, "east.csv"));
    const fifo = await new Deno.Command("mkfifo", { args: [join(dir, "east.csv")] }).output();
    assert.ok(fifo.success, "mkfifo failed");
    let east = startAgent(processes, "east", eastConfig);
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);

    const asking = ask(processes, control, ["sum", "chol"]);
    await hospital.waitForLine(/round \S+: chol sum over east, north, south/);
    east.kill("SIGKILL");
    const failed = await asking;
    assert.equal(failed.code, 1);
    assert.match(String((failed.json["error"] as { message: string }).message), /east/);

    // The service goes on: east comes back with a real file, and the next round succeeds.
    await east.finish(10_000);
    await Deno.remove(join(dir, "east.csv"));
    await writeCsv(dir, sites[2]!);
    east = startAgent(processes, "east", eastConfig);
    await hospital.waitForLines(/east connected/, 2, 30_000);
    const ok = resultOf(await ask(processes, control, ["sum", "chol"]));
    assert.equal(ok.result["sum"], sumOf(sites.flatMap((s) => s.cells)));

    // North's next update: the next round reads it afresh.
    sites[0]!.cells = ["300.0", "310.5", "320.0"];
    await writeCsv(dir, sites[0]!);
    const fresh = resultOf(await ask(processes, control, ["sum", "chol"]));
    assert.equal(fresh.result["sum"], sumOf(sites.flatMap((s) => s.cells)));

    // The same question over {north, south}: each one's data version was answered over
    // {east, north, south}, so the difference would be east's value: both refuse.
    east.kill("SIGKILL");
    // The second time east's connection ends (the first was the failed round).
    await hospital.waitForLines(/^east: /, 2);
    const smaller = await ask(processes, control, ["sum", "chol"]);
    assert.equal(smaller.code, 1, JSON.stringify(smaller.json));
    assert.match(
      String((smaller.json["error"] as { message: string }).message),
      /(north|south): refused by policy/,
    );
    for (const name of ["north", "south"]) {
      // The second refusal may be written just after the round was reported.
      const refusals = await waitForAudit(dir, name, "refused", 1);
      assert.equal(refusals.length, 1, `${name} refused the smaller set once`);
    }

    const audit = await auditOf(dir, "south");
    const done = audit.filter((e) => e["outcome"] === "done");
    assert.deepEqual(done.map((e) => e["session"]), [ok.session, fresh.session]);
    for (const entry of done) {
      assert.deepEqual(entry["contributors"], ["east", "north", "south"]);
      assert.match(String(entry["resultDigest"]), /^[0-9a-f]{64}$/);
      assert.equal(entry["variable"], "chol");
    }
    const refused = audit.filter((e) => e["outcome"] === "refused");
    assert.equal(refused.length, 1);
    assert.match(String(refused[0]!["reason"]), /another contributor set/);
    assert.equal((await Deno.stat(join(dir, "south.audit.log"))).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(dir, "south.state.json"))).mode! & 0o777, 0o600);
  });
});
