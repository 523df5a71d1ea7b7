/**
 * A hostile hospital that sends an agent a second START (n-of-n) naming a
 * smaller set: the core ignores it as late, and the agent must not record
 * its set either (review 4, R4-0: it did, so the next round over the smaller
 * set was answered and a site's value came out by difference).
 *
 * The hostile hospital is the real serving hospital with a man in the
 * middle that holds the hospital's key (so the agents' TLS checks pass, as
 * they would for a hospital gone bad) and each agent's key towards the
 * hospital, and adds the second START after the real one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import { FRAME_LIMIT, FrameDecoder } from "../../lib/wire/frame.ts";
import { decodePayload, encodeMessage } from "../../lib/wire/messages.ts";
import { encodeFrame } from "../../lib/wire/frame.ts";
import { ask, resultOf, type Site, startAgent, startService, writeSite } from "./helpers.ts";

/**
 * Relays one agent's connection to the hospital, adding after each START a
 * copy without `drop`. Returns its port and a close function.
 */
function hostileRelay(pki: string, name: string, hospitalPort: number, drop: string) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(join(pki, "hospital.crt")),
    key: Deno.readTextFileSync(join(pki, "hospital.key")),
  });
  const open = new Set<Deno.Conn>();
  let injected = 0;
  const serving = (async () => {
    for await (const agent of listener) {
      open.add(agent);
      (async () => {
        const hospital = await Deno.connectTls({
          hostname: "127.0.0.1",
          port: hospitalPort,
          caCerts: [await Deno.readTextFile(join(pki, "ca.crt"))],
          cert: await Deno.readTextFile(join(pki, `${name}.crt`)),
          key: await Deno.readTextFile(join(pki, `${name}.key`)),
        });
        open.add(hospital);
        const up = agent.readable.pipeTo(hospital.writable).catch(() => {});
        const decoder = new FrameDecoder({ limit: FRAME_LIMIT });
        const writer = agent.writable.getWriter();
        try {
          for await (const bytes of hospital.readable) {
            await writer.write(bytes);
            decoder.push(bytes);
            for (let payload = decoder.next(); payload; payload = decoder.next()) {
              if (payload[0] !== 1) continue;
              let decoded;
              try {
                decoded = decodePayload(payload);
              } catch {
                continue; // idle and other frames the decoder does not take
              }
              if (decoded.kind !== "message" || decoded.message.type !== "start") continue;
              const start = decoded.message;
              const second = {
                ...start,
                participants: start.participants.filter((p) => p.name !== drop),
              };
              await writer.write(encodeFrame(encodeMessage(second)));
              injected++;
            }
          }
        } catch {
          // either side went away
        } finally {
          await up;
          for (const conn of [agent, hospital]) {
            try {
              conn.close();
            } catch { /* closed already */ }
          }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    injected: () => injected,
    async close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* closed already */ }
      }
      await serving;
    },
  };
}

Deno.test("service: a second START naming a smaller set does not change the set an agent records", async () => {
  const pki = await makePki(["hospital", "a", "b", "c"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-second-start-" });
  const relays: ReturnType<typeof hostileRelay>[] = [];
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
          const relay = hostileRelay(pki, site.name, port, "a");
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
      assert.ok(relays.every((r) => r.injected() >= 1), "each relay sent a second START");

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
    for (const relay of relays) await relay.close();
  }
});
