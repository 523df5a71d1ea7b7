/**
 * A peer's count of consistency signatures (lib/protocol/peer/
 * consistency.ts), which stops checking once T verify: signatures that do
 * not verify never make up the count, wherever they stand in UNMASK — T − 1
 * valid ones followed by forged ones stop the reveal — and a round whose
 * UNMASK carries more than T valid signatures still reveals and sums exactly.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Message } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  type NetEvent,
  plainSum,
  runRound,
  sentBy,
  show,
  sumInput,
  sumTerms,
} from "./harness.ts";

const terms = sumTerms("threshold", 3);

/** UNMASK to `to` with the signatures of `forge` altered (one bit flipped). */
function forgeSignatures(to: string, forge: readonly string[]) {
  return (e: NetEvent): NetEvent[] => {
    if (e.from !== HOSPITAL || e.to !== to || !("message" in e) || e.message.type !== "unmask") {
      return [e];
    }
    const signatures = e.message.signatures.map((s) => {
      if (!forge.includes(s.name)) return s;
      const signature = Uint8Array.from(s.signature);
      signature[7]! ^= 1;
      return { ...s, signature };
    });
    const message: Message = { ...e.message, signatures };
    return [{ ...e, message }];
  };
}

Deno.test("consistency: T − 1 valid signatures followed by forged ones stop the reveal", async () => {
  const result = await runRound({
    peers: 5,
    terms,
    inputs: sumInput,
    tamper: forgeSignatures("p000", ["p002", "p003", "p004"]),
  });
  assert.equal(sentBy(result.net.sent, "p000", "reveal").length, 0, "p000 revealed nothing");
  const outcome = result.peers.get("p000");
  assert.equal(outcome?.kind, "aborted", show(outcome));
  if (outcome?.kind === "aborted") assert.match(outcome.reason, /2 valid signatures/);
});

Deno.test("consistency: forged signatures before T valid ones do not stop an honest reveal", async () => {
  const result = await runRound({
    peers: 5,
    terms,
    inputs: sumInput,
    tamper: forgeSignatures("p000", ["p000", "p001"]),
  });
  assert.equal(sentBy(result.net.sent, "p000", "reveal").length, 1, "p000 revealed once");
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  assert.deepEqual([...result.hospital.result], [plainSum(result.hospital.set)]);
});
