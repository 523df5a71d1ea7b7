/**
 * The upload watchdog wired into the one-shot hospital, over real mutual
 * TLS in one process (lib/runtime/hospital.ts, lib/runtime/upload_watchdog.ts):
 * dave's link to the hospital goes through a proxy that either stops
 * forwarding his bytes part-way through his masked input (a stalled upload:
 * the hospital must drop him after the stall window, long before the input
 * deadline, and pass his slot on) or forwards them slowly (a slow upload,
 * each chunk frame taking longer than the window: bytes keep arriving, so
 * he must stay in the sum; review 7 found a watchdog counting frames cut
 * such a peer).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadIdentity } from "../../lib/identity.ts";
import type { HostPort } from "../../lib/names.ts";
import { runStarHospital, type StarHospitalOptions } from "../../lib/runtime/hospital.ts";
import { runStarPeer } from "../../lib/runtime/peer.ts";
import { uniformDeadlines } from "../../lib/runtime/terms.ts";
import { makePki, removeDir } from "../helpers.ts";

/** Four chunks a vector (2 MiB). */
const D = 4 * 65_536;
const INPUT_MS = 60_000;
const STALL_MS = 300;

/**
 * A TCP proxy in front of the hospital whose client → server direction is
 * paced at `bytesPerSecond`, and frozen (bytes held, the connection left
 * open) after `freezeAfter` bytes.
 */
function pacedProxy(target: () => number, bytesPerSecond: number, freezeAfter = Infinity) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const done = (async () => {
    for await (const client of listener) {
      conns.push(client);
      const server = await Deno.connect({ hostname: "127.0.0.1", port: target() });
      conns.push(server);
      server.readable.pipeTo(client.writable).catch(() => {});
      void (async () => {
        const writer = server.writable.getWriter();
        let forwarded = 0;
        try {
          for await (const chunk of client.readable) {
            for (let at = 0; at < chunk.length; at += 16_384) {
              const part = chunk.subarray(at, at + 16_384);
              if (forwarded + part.length > freezeAfter) return; // frozen: nothing more goes on
              await writer.write(part);
              forwarded += part.length;
              if (bytesPerSecond < Infinity) {
                await new Promise((resolve) =>
                  setTimeout(resolve, (part.length / bytesPerSecond) * 1000)
                );
              }
            }
          }
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed already */ }
      }
      await done;
    },
  };
}

/** A threshold round of four at D, dave behind `proxy`; the hospital's result and log. */
async function roundWithDaveBehind(
  dir: string,
  proxyOptions: { bytesPerSecond: number; freezeAfter?: number },
) {
  const names = ["alice", "bob", "carol", "dave"];
  const id = (name: string, use: "hospital" | "peer") =>
    loadIdentity(name, {
      ca: join(dir, "ca.crt"),
      cert: join(dir, `${name}.crt`),
      key: join(dir, `${name}.key`),
    }, { use });
  const terms: StarHospitalOptions["terms"] = {
    participants: 4,
    query: `vector:${D}`,
    scale: 0,
    max: 1000n,
    maxRows: 1,
    mode: "threshold",
    threshold: 3,
    minContributors: 2,
    dimension: D,
    deadlines: uniformDeadlines(INPUT_MS),
  };
  let hospitalPort = 0;
  const proxy = pacedProxy(
    () => hospitalPort,
    proxyOptions.bytesPerSecond,
    proxyOptions.freezeAfter,
  );
  const logs: string[] = [];
  const stops = names.map(() => new AbortController());
  try {
    let listening!: (address: HostPort) => void;
    const address = new Promise<HostPort>((resolve) => listening = resolve);
    const started = performance.now();
    const hospital = runStarHospital({
      identity: await id("hospital", "hospital"),
      listen: { hostname: "127.0.0.1", port: 0 },
      peers: 4,
      terms,
      joinTimeoutMs: 20_000,
      log: (line) => logs.push(`[hospital] ${line}`),
      onListening: listening,
      uploads: 1,
      uploadStallMs: STALL_MS,
    });
    hospitalPort = (await address).port;
    const peers = names.map(async (name, i) =>
      await runStarPeer({
        identity: await id(name, "peer"),
        hospital: { hostname: "127.0.0.1", port: name === "dave" ? proxy.port : hospitalPort },
        hospitalName: "hospital",
        input: () => Float64Array.from({ length: D }, (_, k) => (k + i) % 1000),
        inviteTimeoutMs: 20_000,
        log: (line) => logs.push(`[${name}] ${line}`),
        signal: stops[i]!.signal,
      })
    );
    // Settled as they end: a peer's failure is part of the scenario, not an unhandled rejection.
    const peersEnded = Promise.allSettled(peers);
    const outcome = await hospital.then(
      (value) => ({ value, elapsed: performance.now() - started }),
      (error) => ({ error: error as Error, elapsed: performance.now() - started }),
    );
    // A frozen dave would wait out his own deadline: stop him.
    for (const stop of stops) stop.abort(new Error("test over"));
    await peersEnded;
    return { outcome, logs, names };
  } finally {
    await proxy.close();
  }
}

Deno.test("upload stall: an admitted peer whose bytes stop coming is dropped after the window, and the others finish", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "carol", "dave"]);
  try {
    // Frozen after 1 MiB: his INPUT and part of his first chunks are through.
    const { outcome, logs, names } = await roundWithDaveBehind(dir, {
      bytesPerSecond: Infinity,
      freezeAfter: 1024 * 1024,
    });
    if (!("value" in outcome)) console.error(logs.join("\n"));
    assert.ok("value" in outcome, `the round finishes: ${"error" in outcome && outcome.error}`);
    assert.deepEqual(outcome.value.outcome.set, names.slice(0, 3));
    const expected = Float64Array.from(
      { length: D },
      (_, k) => (k % 1000) + ((k + 1) % 1000) + ((k + 2) % 1000),
    );
    assert.equal(outcome.value.outcome.result.findIndex((x, k) => x !== expected[k]), -1);
    assert.ok(
      logs.includes("[hospital] dropped dave: no progress on its masked input after PROCEED"),
      logs.filter((l) => l.includes("dave")).join("\n"),
    );
    assert.ok(outcome.elapsed < INPUT_MS / 2, `done in ${outcome.elapsed} ms, not at the deadline`);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("upload stall: a slow upload whose frames each take longer than the window stays in the sum", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "carol", "dave"]);
  try {
    // 1 MB/s: a 512 KiB chunk frame takes about 0.5 s, the window is 0.3 s,
    // and 64 KiB arrive in well under the window even at a quarter of the pace.
    const { outcome, logs, names } = await roundWithDaveBehind(dir, { bytesPerSecond: 1_000_000 });
    if (!("value" in outcome)) console.error(logs.join("\n"));
    assert.ok("value" in outcome, `the round finishes: ${"error" in outcome && outcome.error}`);
    assert.deepEqual(outcome.value.outcome.set, names);
  } finally {
    await removeDir(dir);
  }
});
