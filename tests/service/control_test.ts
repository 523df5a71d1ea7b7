/**
 * `ask` and a hospital that is not serving (yet): without `--peers` it fails
 * at once with the reason; with `--peers N` it waits, within its timeout, for
 * the hospital as for the agents, so an operator (or a script) may start the
 * three at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, removeDir } from "../helpers.ts";
import { ask, freePort, resultOf, startAgent, startService, writeSite } from "./helpers.ts";

Deno.test("ask without --peers fails at once when no hospital serves, naming why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-control-" });
  const processes: CliProcess[] = [];
  try {
    const answer = await ask(processes, join(dir, "sumshare.sock"), ["sum", "chol"], 30_000);
    assert.equal(answer.code, 1);
    assert.match(
      String((answer.json["error"] as { message?: unknown })?.message),
      /Cannot reach the hospital's control socket .*: no serving hospital there/,
    );
  } catch (error) {
    for (const p of processes) console.error(p.log());
    throw error;
  } finally {
    for (const p of processes) p.kill();
    await removeDir(dir);
  }
});

Deno.test("ask --peers 2 started before the hospital waits for it and its agents", async () => {
  const pki = await makePki(["hospital", "north", "south"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-control-" });
  const processes: CliProcess[] = [];
  try {
    const port = freePort();
    const control = join(dir, "sumshare.sock");
    const sites = [
      { name: "north", column: "cholesterol_mg_dl", cells: ["180", "220"] },
      { name: "south", column: "chol", cells: ["199"] },
    ];
    const configs = await Promise.all(sites.map((s) => writeSite(dir, pki, s, port)));
    const asked = ask(processes, control, ["--peers", "2", "--timeout", "60", "sum", "chol"]);
    // The hospital starts only once ask has found nothing there and says it waits.
    await processes[0]!.waitForLine(/no hospital serves on .* yet; waiting up to 60 s/, 30_000);
    await startService(processes, pki, control, `127.0.0.1:${port}`);
    sites.forEach((site, i) => startAgent(processes, site.name, configs[i]!));
    const { result, contributors } = resultOf(await asked);
    assert.equal(result["sum"], 180 + 220 + 199);
    assert.deepEqual(contributors, ["north", "south"]);
  } catch (error) {
    for (const p of processes) console.error(p.log());
    throw error;
  } finally {
    for (const p of processes) p.kill();
    await removeDir(dir);
    await removeDir(pki);
  }
});
