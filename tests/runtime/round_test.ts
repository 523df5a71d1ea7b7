/**
 * The v2 runtime over real mutual TLS on loopback, in one process: a
 * hospital and its peers, each with its own certificate made by the
 * project's own PKI code, run whole rounds through lib/runtime/. (The CLI
 * runs them as separate processes once it switches to the star protocol.)
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadIdentity } from "../../lib/identity.ts";
import type { HostPort } from "../../lib/names.ts";
import { runStarHospital, type StarHospitalOptions } from "../../lib/runtime/hospital.ts";
import { runStarPeer } from "../../lib/runtime/peer.ts";
import { makePki, removeDir } from "../helpers.ts";

const DEADLINES = {
  joinMs: 5_000,
  confirmMs: 5_000,
  shareMs: 5_000,
  inputMs: 5_000,
  consistencyMs: 5_000,
  unmaskMs: 5_000,
};

function terms(
  mode: "nofn" | "threshold",
  participants: number,
  threshold = 0,
): StarHospitalOptions["terms"] {
  return {
    participants,
    query: "sum",
    scale: 0,
    max: 1n << 30n,
    maxRows: 1,
    mode,
    threshold,
    minContributors: 2,
    dimension: 1,
    deadlines: DEADLINES,
  };
}

async function round(
  dir: string,
  values: Record<string, number>,
  roundTerms: StarHospitalOptions["terms"],
  options: { vanish?: string } = {},
) {
  const names = Object.keys(values);
  const hospitalIdentity = await loadIdentity("hospital", {
    ca: join(dir, "ca.crt"),
    cert: join(dir, "hospital.crt"),
    key: join(dir, "hospital.key"),
  }, { use: "hospital" });
  const logs: string[] = [];
  let listening!: (address: HostPort) => void;
  const address = new Promise<HostPort>((resolve) => listening = resolve);
  const hospital = runStarHospital({
    identity: hospitalIdentity,
    listen: { hostname: "127.0.0.1", port: 0 },
    peers: names.length,
    terms: roundTerms,
    joinTimeoutMs: 20_000,
    log: (line) => logs.push(`[hospital] ${line}`),
    onListening: listening,
  });
  const { port } = await address;
  const stops = new Map(names.map((name) => [name, new AbortController()]));
  const peers = names.map(async (name) => {
    const identity = await loadIdentity(name, {
      ca: join(dir, "ca.crt"),
      cert: join(dir, `${name}.crt`),
      key: join(dir, `${name}.key`),
    }, { use: "peer" });
    return await runStarPeer({
      identity,
      hospital: { hostname: "127.0.0.1", port },
      hospitalName: "hospital",
      input: () => {
        // A peer that vanishes at its masked input: its connection is cut.
        if (name === options.vanish) stops.get(name)!.abort(new Error("gone"));
        return Float64Array.of(values[name]!);
      },
      inviteTimeoutMs: 20_000,
      log: (line) => logs.push(`[${name}] ${line}`),
      signal: stops.get(name)!.signal,
    });
  });
  const results = await Promise.allSettled([hospital, ...peers]);
  return { results, logs };
}

Deno.test("runtime: an n-of-n round over mutual TLS sums exactly", async () => {
  const values = { alice: 987_654, bob: 123_456, carol: 5 };
  const dir = await makePki(["hospital", ...Object.keys(values)]);
  try {
    const { results, logs } = await round(dir, values, terms("nofn", 3));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) console.error(logs.join("\n"));
    assert.equal(failed.length, 0, `every party finishes: ${failed.map((f) => String(f.reason))}`);
    const hospital = (results[0] as PromiseFulfilledResult<
      Awaited<ReturnType<typeof runStarHospital>>
    >).value;
    assert.equal(hospital.outcome.result[0], 987_654 + 123_456 + 5);
    assert.deepEqual(hospital.outcome.set, ["alice", "bob", "carol"]);
    assert.deepEqual(hospital.participants, ["alice", "bob", "carol"]);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("runtime: a threshold round survives a peer that vanishes, over exactly the survivors", async () => {
  const values = { alice: 11, bob: 22, carol: 33, dave: 44 };
  const dir = await makePki(["hospital", ...Object.keys(values)]);
  try {
    const { results, logs } = await round(dir, values, terms("threshold", 4, 3), {
      vanish: "dave",
    });
    const [hospital, ...peers] = results;
    if (hospital!.status === "rejected") console.error(logs.join("\n"));
    assert.equal(hospital!.status, "fulfilled", String((hospital as PromiseRejectedResult).reason));
    const value = (hospital as PromiseFulfilledResult<Awaited<ReturnType<typeof runStarHospital>>>)
      .value;
    assert.deepEqual(value.outcome.set, ["alice", "bob", "carol"]);
    assert.equal(value.outcome.result[0], 11 + 22 + 33);
    assert.deepEqual(peers.map((p) => p.status), [
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
    ]);
  } finally {
    await removeDir(dir);
  }
});
