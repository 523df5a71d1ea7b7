/**
 * The bound on uploads, through the in-memory core: the hospital admits at
 * most `uploads` masked inputs at a time with PROCEED, in the order their
 * INPUTs arrived, and passes a lost sender's slot on; a peer sends its
 * chunks only after PROCEED and takes no set or result before it
 * (docs/protocol.md §10.5, §10.9).
 *
 * @module
 */

import assert from "node:assert/strict";
import { sign } from "../../lib/crypto/signing.ts";
import { vectorDigest } from "../../lib/crypto/digest.ts";
import { doneFields } from "../../lib/protocol/transcript.ts";
import { CHUNK_ELEMENTS, type MessageOf } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  type NetEvent,
  peerName,
  plainSum,
  type RoundResult,
  runRound,
  sentBy,
  show,
  startHashOn,
  sumInput,
  sumTerms,
  testPki,
} from "./harness.ts";

const pki = await testPki(10);
const [p0, p1] = [peerName(0), peerName(1)];

/** Two chunks a vector: the last one short. */
const D = CHUNK_ELEMENTS + 5;
const MAX = 1000;

function vectorTerms(mode: "nofn" | "threshold", threshold = 0) {
  return { ...sumTerms(mode, threshold, 2), query: `vector:${D}`, max: BigInt(MAX), dimension: D };
}

function vectorInput(i: number): Float64Array {
  return Float64Array.from({ length: D }, (_, k) => (k * 7 + i * 13) % MAX);
}

function reason(outcome: unknown): string {
  const o = outcome as { kind?: string; reason?: string } | undefined;
  return o?.kind === "aborted" ? o.reason ?? "" : `not aborted: ${show(o)}`;
}

/** Whom the hospital sent PROCEED, in order. */
function proceeds(trace: readonly NetEvent[]): string[] {
  return trace.flatMap((e) =>
    e.from === HOSPITAL && "message" in e && e.message.type === "proceed" ? [e.to] : []
  );
}

/** Checks the sum of the named peers' vector inputs, element by element. */
function assertVectorSum(result: RoundResult, names: readonly string[]): void {
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  assert.deepEqual(result.hospital.set, [...names]);
  const inputs = names.map((n) => vectorInput(Number(n.slice(1))));
  const sum = result.hospital.result;
  const at = sum.findIndex((x, k) => x !== inputs.reduce((s, v) => s + v[k]!, 0));
  assert.equal(at, -1, `the sum differs at element ${at}`);
}

Deno.test("uploads: at most U masked inputs are admitted at once, in INPUT order, and the sum is exact", async () => {
  const result = await runRound({
    peers: 6,
    terms: vectorTerms("nofn"),
    inputs: vectorInput,
    uploads: 2,
  });
  assertVectorSum(result, result.names);
  const admitted = new Set<string>();
  let most = 0;
  const inputOrder: string[] = [];
  for (const e of result.trace) {
    if (e.from === HOSPITAL && "message" in e && e.message.type === "proceed") {
      admitted.add(e.to);
      most = Math.max(most, admitted.size);
    } else if (e.to === HOSPITAL && "message" in e && e.message.type === "input") {
      inputOrder.push(e.from);
    } else if (e.to === HOSPITAL && "chunk" in e) {
      assert.ok(admitted.has(e.from), `${e.from} sent a chunk it was not admitted for`);
      if (e.chunk.index === 1) admitted.delete(e.from);
    }
  }
  assert.equal(most, 2, "two uploads at a time, no more and not fewer");
  assert.deepEqual(proceeds(result.trace), inputOrder, "PROCEED once each, in INPUT order");
});

Deno.test("uploads: when every peer fits, each is sent PROCEED ahead of the phase, before any INPUT", async () => {
  const result = await runRound({ peers: 4, terms: sumTerms("nofn"), inputs: sumInput });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  const firstInput = result.trace.findIndex((e) => "message" in e && e.message.type === "input");
  const granted = result.trace.flatMap((e, k) =>
    e.from === HOSPITAL && "message" in e && e.message.type === "proceed" ? [k] : []
  );
  assert.equal(granted.length, 4);
  assert.ok(granted.every((k) => k < firstInput), "no upload waited for a round trip");
});

Deno.test("uploads: an admitted sender lost mid-upload passes its slot on", async () => {
  // One slot: p000 is admitted first and dies before its second chunk. The
  // others must still be admitted, one after another, and finish without it.
  const result = await runRound({
    peers: 5,
    terms: vectorTerms("threshold", 3),
    inputs: vectorInput,
    uploads: 1,
    dies: [{
      peer: p0,
      when: (e) => "chunk" in e && e.chunk.index === 1,
      delivered: false,
    }],
  });
  assertVectorSum(result, result.names.slice(1));
  assert.equal(proceeds(result.trace)[0], p0);
});

Deno.test("uploads: an admitted upload that stalls is dropped when the runtime says so, and the queue goes on", async () => {
  // One slot; p000 is admitted first and sends no chunk. Without the stall
  // event the others would wait for the deadline, unadmitted, and the round
  // would fail below T.
  let told = false;
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    uploads: 1,
    tamper: (e) => (e.from === p0 && "chunk" in e ? [] : [e]),
    onIdle: async (hospital) => {
      if (told || hospital.phase !== "input") return false;
      told = true;
      await hospital.stalled(p0);
      return true;
    },
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const kept = result.names.slice(1);
  assert.deepEqual(result.hospital.set, kept);
  assert.deepEqual([...result.hospital.result], [plainSum(kept)]);
  assert.ok(
    result.logs.get(HOSPITAL)!.includes(
      `dropped ${p0}: no progress on its masked input after PROCEED`,
    ),
  );
});

Deno.test("uploads: a stall reported for a peer that was not admitted changes nothing", async () => {
  // p000 holds the one slot and sends nothing; p001 waits in the queue. A
  // stall reported for p001 (it was never sent PROCEED) must not drop it.
  let idle = 0;
  const result = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    uploads: 1,
    tamper: (e) => (e.from === p0 && "chunk" in e ? [] : [e]),
    onIdle: async (hospital) => {
      if (idle++ > 0 || hospital.phase !== "input") return false;
      await hospital.stalled(p1);
      return true;
    },
  });
  assert.equal(idle > 0, true, "the round went idle in the input phase");
  const hospitalLog = result.logs.get(HOSPITAL)!;
  assert.ok(
    !hospitalLog.some((l) => l.startsWith(`dropped ${p1}: no chunk`)),
    hospitalLog.join("\n"),
  );
  // At the deadline p000 has no vector and nobody else was admitted; the
  // queued are told it was the hospital's queue, not their silence.
  assert.match(reason(result.hospital), /0 masked inputs arrived; 3 are needed/);
  assert.ok(hospitalLog.includes(`dropped ${p0}: no complete masked input by the deadline`));
  assert.ok(
    hospitalLog.includes(
      `dropped ${p1}: its upload was not admitted before the deadline (1 at a time)`,
    ),
    hospitalLog.join("\n"),
  );
});

Deno.test("uploads: a round refuses fewer than one upload at a time", async () => {
  await assert.rejects(
    runRound({ peers: 3, terms: sumTerms("nofn"), inputs: sumInput, uploads: 0 }),
    (error: Error) =>
      error instanceof RangeError && /uploads must be a positive integer/.test(error.message),
  );
});

Deno.test("guard H27: a chunk before PROCEED drops its sender", async () => {
  // One slot and p000's INPUT first: p001 is queued, and sends a chunk anyway.
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    uploads: 1,
    tamper: (e) => {
      if (e.from !== p1 || !("message" in e) || e.message.type !== "input") return [e];
      return [e, { from: p1, to: HOSPITAL, chunk: { index: 0, data: new Float64Array(1) } }];
    },
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const kept = result.names.filter((n) => n !== p1);
  assert.deepEqual(result.hospital.set, kept);
  assert.deepEqual([...result.hospital.result], [plainSum(kept)]);
  assert.ok(
    result.logs.get(HOSPITAL)!.includes(`dropped ${p1}: chunk before PROCEED`),
    result.logs.get(HOSPITAL)!.join("\n"),
  );
});

Deno.test("guard P33: a peer sends no chunk before PROCEED, and takes no result before it", async () => {
  // A hospital that never admits p001's upload (its PROCEED is withheld)
  // but answers its INPUT with a DONE, validly signed, over a set that names
  // it: p001 must not accept (or attest) a result that cannot hold its input.
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: async (e, net) => {
      if (e.to === p1 && "message" in e && e.message.type === "proceed") return [];
      if (e.from !== p1 || !("message" in e) || e.message.type !== "input") return [e];
      const { session } = e.message;
      const set = [p0, p1, peerName(2)];
      const resultDigest = await vectorDigest(Float64Array.of(plainSum(set)));
      const fields = doneFields(session, await startHashOn(net), set, resultDigest);
      const signature = await sign(pki.hospital.signingKey, "done", fields);
      const done = { type: "done" as const, session, resultDigest, signature };
      return [e, { from: HOSPITAL, to: p1, message: done }];
    },
  });
  assert.match(reason(result.peers.get(p1)), /DONE before PROCEED/);
  assert.equal(result.trace.filter((e) => e.from === p1 && "chunk" in e).length, 0);
  assert.equal(sentBy(result.trace, p1, "attest").length, 0);
});

Deno.test("uploads: when PROCEED comes ahead, it precedes the message after which a peer sends INPUT", async () => {
  // n-of-n: ahead of CONFIRMATIONS; threshold: ahead of SHARES. A PROCEED
  // answered only after INPUT made the peer's chunk a second small write,
  // held 40 ms by Nagle's algorithm for the hospital's delayed ACK.
  for (
    const [terms, opener] of [[sumTerms("nofn"), "confirmations"], [
      sumTerms("threshold", 3, 2),
      "shares",
    ]] as const
  ) {
    const result = await runRound({ peers: 4, terms, inputs: sumInput });
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    for (const name of result.names) {
      const types = result.trace.flatMap((e) =>
        e.from === HOSPITAL && e.to === name && "message" in e ? [e.message.type] : []
      );
      assert.ok(
        types.indexOf("proceed") >= 0 && types.indexOf("proceed") + 1 === types.indexOf(opener),
        `${name} was sent ${types.join(", ")}`,
      );
    }
  }
});

Deno.test("uploads: a sparse holder dropped for having no neighbour left is sent ABORT, not PROCEED", async () => {
  // K = 4, T = 3, 20 peers; only positions 0, 2, 18 and 10, 11, 12 send
  // SEALED: 2 and 18 have fewer than T holders in their windows and are
  // dropped, and 0 then has no neighbour left (review 8).
  const positions = new Map<string, number>();
  const keep = new Set([0, 2, 18, 10, 11, 12]);
  const result = await runRound({
    peers: 20,
    terms: { ...sumTerms("threshold", 3, 2), neighbors: 4 },
    inputs: sumInput,
    tamper: (e) => {
      if ("message" in e && e.message.type === "start") {
        for (const p of e.message.participants) positions.set(p.name, p.position!);
      }
      if ("message" in e && e.message.type === "sealed" && !keep.has(positions.get(e.from)!)) {
        return [];
      }
      return [e];
    },
  });
  const victim = [...positions].find(([, q]) => q === 0)![0];
  const log = result.logs.get(HOSPITAL)!;
  assert.ok(log.includes(`dropped ${victim}: no neighbour shared keys`), log.join("\n"));
  const types = result.trace.flatMap((e) =>
    e.from === HOSPITAL && e.to === victim && "message" in e ? [e.message.type] : []
  );
  assert.equal(types.at(-1), "abort");
  assert.ok(!types.includes("proceed"), types.join(", "));
});

Deno.test("guard P33: SURVIVORS before PROCEED, or a second PROCEED, aborts the peer", async () => {
  // One slot: p001's PROCEED comes after every INPUT is in, and is replaced
  // by a SURVIVORS over everyone, made of their INPUT statements.
  const early = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    uploads: 1,
    tamper: (e, net) => {
      if (e.to !== p1 || !("message" in e) || e.message.type !== "proceed") return [e];
      const statements = [p0, p1, peerName(2), peerName(3)].map((name) => {
        const m = sentBy(net.sent, name, "input")[0] as MessageOf<"input"> | undefined;
        return m && {
          name,
          digest: m.digest,
          seedCommit: m.seedCommit,
          partners: m.partners,
          signature: m.signature,
        };
      }).filter((s) => s !== undefined);
      const set = statements.map((s) => s.name);
      return [{
        ...e,
        message: { type: "survivors", session: e.message.session, set, inputs: statements },
      }];
    },
  });
  assert.match(reason(early.peers.get(p1)), /SURVIVORS before PROCEED/);
  assert.equal(sentBy(early.trace, p1, "consistency").length, 0);

  const twice = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e) =>
      e.to === p1 && "message" in e && e.message.type === "proceed" ? [e, structuredClone(e)] : [e],
  });
  assert.match(reason(twice.peers.get(p1)), /a second PROCEED/);
  // Both came ahead of SHARES: p001 stopped before masking anything.
  assert.equal(twice.trace.filter((e) => e.from === p1 && "chunk" in e).length, 0);
  // And one in the input phase, after the first (one upload slot, so PROCEED follows INPUT).
  const late = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    uploads: 1,
    tamper: (e) =>
      e.to === p0 && "message" in e && e.message.type === "proceed" ? [e, structuredClone(e)] : [e],
  });
  assert.match(reason(late.peers.get(p0)), /a second PROCEED/);
  assert.equal(late.trace.filter((e) => e.from === p0 && "chunk" in e).length, 1);
});
