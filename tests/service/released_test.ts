/**
 * The released-result record (docs/protocol.md §16.1): after a served round
 * the hospital signs what it released and each agent of the set keeps it in
 * its audit log, equal to what `ask` printed. One agent reaches the hospital
 * through a man in the middle holding the hospital's and that agent's own
 * credentials (the test's PKI), which alters or strips the record: that
 * agent logs it and does not write it as released. The verification
 * function is also checked rule by rule.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { describeError } from "../../lib/errors.ts";
import {
  type Release,
  ReleasedError,
  releasedSigningInput,
  signReleased,
  verifyReleased,
} from "../../lib/service/released.ts";
import {
  decodeMessage,
  encodeMessage,
  isIdle,
  MAX_RELEASED_CHARS,
  type MessageOf,
} from "../../lib/wire/messages.ts";
import { fromCanonicalBase64 } from "../../lib/encoding.ts";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import {
  AgentRelay,
  ask,
  resultOf,
  type Site,
  startAgent,
  startService,
  writeSite,
} from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "east"];
const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

type Tamper = "none" | "statistics" | "unsigned";

/**
 * What a hospital whose record does not match its key sends for one frame:
 * its `released` altered as `state.tamper` says (counted), the rest as is.
 */
function tamperReleased(
  state: { tamper: Tamper; tampered: number },
  payload: Uint8Array,
): Uint8Array {
  // The heartbeat is not a message decodeMessage knows; it passes untouched.
  if (payload[0] !== 0x01 || state.tamper === "none" || isIdle(payload)) return payload;
  const message = decodeMessage(payload);
  if (message.type !== "released") return payload;
  state.tampered++;
  if (state.tamper === "unsigned") {
    return encodeMessage({ ...message, signature: new Uint8Array(64) });
  }
  const statistics = JSON.parse(message.statistics!) as Record<string, unknown>;
  statistics["mean"] = 1;
  return encodeMessage({ ...message, statistics: JSON.stringify(statistics) });
}

/** The public key of the hospital's certificate in `pki`, for checking a record by hand. */
async function hospitalKey(pki: string): Promise<CryptoKey> {
  const cert = new x509.X509Certificate(await Deno.readTextFile(join(pki, "hospital.crt")));
  return await cert.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
}

/** Waits until `name`'s audit log has a done entry for `session`, and returns it. */
async function doneEntry(
  dir: string,
  name: string,
  session: string,
  ms = 10_000,
): Promise<Record<string, unknown>> {
  const started = performance.now();
  for (;;) {
    const text = await Deno.readTextFile(join(dir, `${name}.audit.log`)).catch(() => "");
    const entry = text.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l))
      .find((e) => e.session === session && e.outcome === "done");
    if (entry) return entry;
    if (performance.now() - started > ms) {
      throw new Error(`${name}'s audit log has no done entry for ${session}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("released: each agent's audit log holds the statistics ask printed, signed by the hospital; an altered or unsigned record is logged and not kept", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-released-" });
  let middle: AgentRelay | undefined;
  const state: { tamper: Tamper; tampered: number } = { tamper: "none", tampered: 0 };
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    middle = await AgentRelay.start(pki, "north", port, {
      toAgent: (payload) => [tamperReleased(state, payload)],
    });
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["180.5", "220.0", "95.5"] },
      { name: "south", column: "c", cells: ["199.9", "301.0"] },
      { name: "east", column: "mg", cells: ["150.0", "390.0", "400.0"] },
    ];
    const agents = new Map<string, CliProcess>();
    for (const site of sites) {
      const to = site.name === "north" ? middle.port : port;
      agents.set(site.name, startAgent(processes, site.name, await writeSite(dir, pki, site, to)));
    }
    await hospital.waitForLines(/(north|south|east) connected/, 3, 30_000);
    const key = await hospitalKey(pki);

    // An honest record: every agent keeps what ask printed.
    const honest = resultOf(await ask(processes, control, ["mean", "chol"]));
    for (const name of ["north", "south", "east"]) {
      const entry = await doneEntry(dir, name, honest.session);
      const released = entry["released"] as Record<string, unknown>;
      assert.ok(released, `${name} kept the record: ${JSON.stringify(entry)}`);
      assert.deepEqual(released["statistics"], honest.result);
      assert.equal(released["query"], "mean");
      assert.equal(released["variable"], "chol");
      assert.deepEqual(released["set"], honest.contributors);
      assert.equal(released["resultDigest"], entry["resultDigest"]);
      // The record proves itself: the hospital's certificate key verifies it.
      const input = releasedSigningInput({
        session: honest.session,
        startHash: Uint8Array.from(
          (released["startHash"] as string).match(/../g)!.map((h) => parseInt(h, 16)),
        ),
        variable: "chol",
        query: "mean",
        set: honest.contributors,
        resultDigest: released["resultDigest"] as string,
        statistics: JSON.stringify(released["statistics"]),
      });
      const signature = fromCanonicalBase64(released["signature"] as string)! as Uint8Array<
        ArrayBuffer
      >;
      assert.ok(await crypto.subtle.verify(ECDSA, key, signature, input), name);
    }

    // Altered statistics, then no signature: north logs it and does not keep it.
    for (const tamper of ["statistics", "unsigned"] as const) {
      state.tamper = tamper;
      const answer = resultOf(await ask(processes, control, ["mean", "chol"]));
      const entry = await doneEntry(dir, "north", answer.session);
      assert.equal(entry["released"], undefined, `${tamper}: ${JSON.stringify(entry)}`);
      assert.match(String(entry["releasedInvalid"]), /signature does not verify/);
      await agents.get("north")!.waitForLine(
        new RegExp(`round ${answer.session}: Invalid released result: .*not recorded`),
      );
      for (const name of ["south", "east"]) {
        const other = await doneEntry(dir, name, answer.session);
        assert.deepEqual(
          (other["released"] as Record<string, unknown>)["statistics"],
          answer.result,
        );
      }
    }
    assert.equal(state.tampered, 2);
  }).finally(() => middle?.close());
});

/** A release and its signer, for the rules below. */
async function signed(statistics: string | null = '{"sum":12.5}') {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const release: Release = {
    session: "0123456789abcdef0123456789abcdef",
    startHash: crypto.getRandomValues(new Uint8Array(32)),
    variable: "chol",
    query: "sum",
    set: ["alice", "bob"],
    resultDigest: "ab".repeat(32),
    statistics: statistics ?? undefined,
  };
  const message = await signReleased(release, keys.privateKey);
  const seen = { ...release, hospitalKey: keys.publicKey };
  return { release, message, seen };
}

Deno.test("released: verifyReleased keeps a record only for this round, under the hospital's key", async () => {
  const { message, seen } = await signed();
  const record = await verifyReleased(message, seen);
  assert.deepEqual(record.statistics, { sum: 12.5 });
  assert.deepEqual(record.set, ["alice", "bob"]);
  // The codec round-trips it exactly.
  assert.deepEqual(decodeMessage(encodeMessage(message)), message);

  const refused = async (m: MessageOf<"released">, s: typeof seen, pattern: RegExp) => {
    await assert.rejects(() => verifyReleased(m, s), (e: unknown) => {
      assert.ok(e instanceof ReleasedError, describeError(e));
      assert.match(e.message, pattern);
      return true;
    });
  };
  await refused({ ...message, session: "f".repeat(32) }, seen, /another session/);
  await refused({ ...message, query: "mean" }, seen, /variable and query/);
  await refused({ ...message, variable: "age" }, seen, /variable and query/);
  await refused({ ...message, set: ["alice"] }, seen, /contributor set/);
  await refused({ ...message, set: ["alice", "carol"] }, seen, /contributor set/);
  await refused({ ...message, resultDigest: "cd".repeat(32) }, seen, /result digest/);
  // The same fields the agent saw, but not what the hospital signed.
  await refused({ ...message, statistics: '{"sum":13}' }, seen, /signature does not verify/);
  const { statistics: _, ...stripped } = message;
  await refused(stripped, seen, /signature does not verify/);
  await refused({ ...message, signature: new Uint8Array(64) }, seen, /signature/);
  const other = await signed();
  await refused(message, { ...seen, hospitalKey: other.seen.hospitalKey }, /signature/);
  await refused(message, { ...seen, startHash: new Uint8Array(32) }, /signature/);
  // Signed, but not a statistics object.
  const list = await signed("[1,2]");
  await refused(list.message, list.seen, /not a JSON object/);

  // A record too long for a frame goes without statistics, the digest standing for them.
  const bare = await signed(null);
  const kept = await verifyReleased(bare.message, bare.seen);
  assert.equal(kept.statistics, undefined);
  assert.throws(
    () =>
      decodeMessage(encodeMessage({ ...message, statistics: "1".repeat(MAX_RELEASED_CHARS + 1) })),
    /statistics must be JSON text/,
  );
});
