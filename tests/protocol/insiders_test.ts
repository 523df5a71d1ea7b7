/**
 * Authenticated insiders the hospital's core must survive (issue 9's list,
 * beyond the guards in guards_test.ts and the process-level insiders of
 * tests/star_hostile_test.ts): a masked input of another length (validly
 * signed), a second masked input, a masked input after its deadline, a
 * second unmasking answer, and a message from another session. Each is
 * either dropped as the protocol says, with the reason logged, or ignored
 * and logged; the round ends in the exact sum over the reported set or a
 * clean abort, never a wrong sum.
 *
 * Guards, each seen to turn its test red when deleted:
 *   H27 INPUT length = the layout's dimension      (masked_input.ts)  → "another length"
 *   H28 one INPUT per sender                       (masked_input.ts)  → "a second masked input"
 *   H29 one REVEAL per signer                      (unmasking.ts)     → "a second unmasking answer"
 *   H30 a message for another session is ignored   (state.ts)         → "another session"
 *   H31 anything from a dropped party is ignored   (state.ts)         → "after its deadline" (the
 *       sender was dropped at the input deadline, so its late INPUT meets this check first)
 *
 * @module
 */

import assert from "node:assert/strict";
import { sign } from "../../lib/crypto/signing.ts";
import { inputFields } from "../../lib/protocol/transcript.ts";
import type { MessageOf } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  isMessageFrom,
  type NetEvent,
  peerName,
  plainSum,
  runRound,
  show,
  startHashOn,
  sumInput,
  sumTerms,
  testPki,
} from "./harness.ts";

const pki = await testPki(5);
const p1 = peerName(1);
const keyOf = (name: string) => pki.peers.find((p) => p.name === name)!.signingKey;
const threshold5 = { peers: 5, terms: sumTerms("threshold", 3, 2), inputs: sumInput };

type Result = Awaited<ReturnType<typeof runRound>>;

function assertDone(result: Result, without: string[]): void {
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const expected = result.names.filter((n) => !without.includes(n));
  assert.deepEqual(result.hospital.set, expected);
  assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
}

function hospitalLog(result: Result): string {
  return (result.logs.get(HOSPITAL) ?? []).join("\n");
}

Deno.test("insider: a masked input of another length, validly signed, drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: async (e, net) => {
      if (!isMessageFrom(e, p1, "input") || !("message" in e)) return [e];
      const m = e.message as MessageOf<"input">;
      const length = m.length + 1;
      const fields = inputFields(m.session, await startHashOn(net), { ...m, length });
      return [{
        ...e,
        message: { ...m, length, signature: await sign(keyOf(p1), "input", fields) },
      }];
    },
  });
  assertDone(result, [p1]);
  assert.match(hospitalLog(result), new RegExp(`dropped ${p1}: its input has 2 elements, not 1`));
});

Deno.test("insider: a second masked input drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: (e) => (isMessageFrom(e, p1, "input") ? [e, structuredClone(e)] : [e]),
  });
  assertDone(result, [p1]);
  assert.match(hospitalLog(result), new RegExp(`dropped ${p1}: second input`));
});

Deno.test("insider: a masked input after its deadline is ignored and logged, never summed", async () => {
  // p001's INPUT and chunks are held back until the hospital has moved on
  // (its SURVIVORS to the others), then delivered.
  const held: NetEvent[] = [];
  let released = false;
  const result = await runRound({
    ...threshold5,
    tamper: (e) => {
      if (!released && e.from === p1 && e.to === HOSPITAL && held.length < 2) {
        if (isMessageFrom(e, p1, "input") || (held.length === 1 && "chunk" in e)) {
          held.push(e);
          return [];
        }
      }
      if (!released && isMessageFrom(e, HOSPITAL, "survivors")) {
        released = true;
        return [e, ...held];
      }
      return [e];
    },
  });
  assert.equal(held.length, 2, "the INPUT and its chunk were held back");
  assertDone(result, [p1]);
  assert.match(hospitalLog(result), new RegExp(`ignored (late )?input from ${p1}`));
});

Deno.test("insider: a second unmasking answer drops its sender; the sum stays exact", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: (e) => (isMessageFrom(e, p1, "reveal") ? [e, structuredClone(e)] : [e]),
  });
  // p001's masked input is in; whether its first reveal counted or not, the
  // sum is over exactly the set the hospital reports, or the round aborts.
  if (result.hospital.kind === "done") {
    assert.deepEqual([...result.hospital.result], [plainSum(result.hospital.set)]);
    assert.ok(result.hospital.set.includes(p1), "its input was complete, so it is in the set");
  } else {
    assert.equal(result.hospital.kind, "aborted");
  }
  assert.match(hospitalLog(result), new RegExp(`dropped ${p1}: second reveal`));
});

Deno.test("insider: a message from another session is ignored and logged; the round completes", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: (e) => {
      if (!isMessageFrom(e, p1, "confirm") || !("message" in e)) return [e];
      const other = { ...e.message, session: "f".repeat(32) } as typeof e.message;
      return [{ ...e, message: other }, e];
    },
  });
  assertDone(result, []);
  assert.match(hospitalLog(result), new RegExp(`ignored confirm from ${p1}: another session`));
});
