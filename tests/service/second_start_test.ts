/**
 * A hostile hospital that sends an agent a second START (n-of-n) naming a
 * smaller set: the core ignores it as late, and the agent must not record
 * its set either (review 4, R4-0: it did, so the next round over the smaller
 * set was answered and a site's value came out by difference).
 *
 * The hostile hospital is the real serving hospital with a man in the
 * middle (AgentRelay) that holds the hospital's key (so the agents' TLS
 * checks pass, as they would for a hospital gone bad) and each agent's key
 * towards the hospital, and adds the second START after the real one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import { decodePayload, encodeMessage } from "../../lib/wire/messages.ts";
import {
  AgentRelay,
  ask,
  type RelayHook,
  resultOf,
  type Site,
  startAgent,
  startService,
  writeSite,
} from "./helpers.ts";

/**
 * The hostile hospital's frames to one agent: each START passed on, then a
 * copy without `drop` (counted in `injected`).
 */
function secondStart(drop: string, injected: { count: number }): RelayHook {
  return (payload) => {
    let decoded;
    try {
      decoded = decodePayload(payload);
    } catch {
      return [payload]; // idle and other frames the decoder does not take
    }
    if (decoded.kind !== "message" || decoded.message.type !== "start") return [payload];
    const start = decoded.message;
    injected.count++;
    return [
      payload,
      encodeMessage({ ...start, participants: start.participants.filter((p) => p.name !== drop) }),
    ];
  };
}

Deno.test("service: a second START naming a smaller set does not change the set an agent records", async () => {
  const pki = await makePki(["hospital", "a", "b", "c"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-second-start-" });
  const relays: AgentRelay[] = [];
  const injected = new Map<string, { count: number }>();
  try {
    await scenario([pki, dir], async (processes: CliProcess[]) => {
      const control = join(dir, "control.sock");
      const { hospital, port } = await startService(processes, pki, control);
      const sites: Site[] = [
        { name: "a", column: "x", cells: ["300.0"] },
        { name: "b", column: "x", cells: ["5.0"] },
        { name: "c", column: "x", cells: ["5.0"] },
      ];
      const agents = new Map<string, CliProcess>();
      for (const site of sites) {
        let to = port;
        if (site.name !== "a") {
          const count = { count: 0 };
          injected.set(site.name, count);
          const relay = await AgentRelay.start(pki, site.name, port, {
            toAgent: secondStart("a", count),
          });
          relays.push(relay);
          to = relay.port;
        }
        agents.set(
          site.name,
          startAgent(processes, site.name, await writeSite(dir, pki, site, to)),
        );
      }
      await hospital.waitForLines(/^(a|b|c) connected/, 3, 30_000);
      const first = resultOf(await ask(processes, control, ["--peers", "3", "sum", "chol"]));
      assert.deepEqual(first.contributors, ["a", "b", "c"]);
      assert.equal(first.result["sum"], 310);
      assert.ok(
        [...injected.values()].every((i) => i.count >= 1),
        "each relay sent a second START",
      );

      agents.get("a")!.kill("SIGKILL");
      await hospital.waitForLines(/^a: /, 1, 30_000);
      // Had b and c recorded {b, c}, this round would be answered: 310 − 10 is a's value.
      const second = await ask(processes, control, ["--peers", "2", "sum", "chol"]);
      assert.equal(second.code, 1, `answered over a smaller set: ${JSON.stringify(second.json)}`);
      assert.match(JSON.stringify(second.json), /refused by policy/);
      for (const name of ["b", "c"]) {
        const state = JSON.parse(await Deno.readTextFile(join(dir, `${name}.state.json`)));
        const sets = Object.values(state.answered["chol"] ?? {});
        assert.deepEqual(sets, [["a", "b", "c"]], `${name} recorded the set it sent to`);
      }
    });
  } finally {
    for (const relay of relays) relay.close();
  }
});
