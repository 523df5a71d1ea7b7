/**
 * The hospital's ABORT reason is its own text and reaches each site's log
 * and terminal. Review 17 had a fake hospital send a reason holding a
 * newline, a forged time-stamped line and terminal escape sequences; the
 * peer logged and printed them raw. Here the in-memory hospital sends such
 * a reason at START; the peer's outcome and every line it logs carry it
 * escaped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HOSPITAL, peerName, runRound, show, sumInput, sumTerms } from "./harness.ts";

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

Deno.test("a hospital's abort reason reaches the peer's log and outcome with its control characters escaped", async () => {
  const hostile =
    "maintenance\n2026-12-02T06:00:00.000Z round done\u001b[31m RED\u001b]0;TITLE\u0007";
  const victim = peerName(0);
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from !== HOSPITAL || e.to !== victim || !("message" in e)) return [e];
      if (e.message.type !== "start") return [e];
      return [{ ...e, message: { type: "abort", session: e.message.session, reason: hostile } }];
    },
  });
  const outcome = result.peers.get(victim);
  assert.equal(outcome?.kind, "aborted", show(outcome));
  const reason = outcome?.kind === "aborted" ? outcome.reason : "";
  assert.ok(!CONTROL.test(reason), JSON.stringify(reason));
  assert.match(reason, /maintenance\\u000a2026-12-02T06:00:00\.000Z round done\\u001b\[31m RED/);
  for (const line of result.logs.get(victim) ?? []) assert.ok(!CONTROL.test(line), line);
});

Deno.test("a peer's refusal reason reaches the hospital's log with its control characters escaped", async () => {
  // Review 18: the log line JSON-quoted the reason, which leaves DEL, the
  // C1 controls (U+009B is an 8-bit CSI) and U+2028 as they are.
  const hostile = "busy\u20282026-12-02T06:00:00.000Z round done\u009b2J\u009b31mRED\u007f";
  const refuser = peerName(0);
  const result = await runRound({
    peers: 3,
    terms: sumTerms("threshold", 2),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from !== refuser || !("message" in e) || e.message.type !== "join") return [e];
      return [{ ...e, message: { type: "refuse", session: e.message.session, reason: hostile } }];
    },
  });
  const log = result.logs.get(HOSPITAL) ?? [];
  const line = log.find((l) => l.startsWith(`${refuser} refused:`));
  assert.ok(line, log.join("\n"));
  assert.match(line, /busy\\u20282026-12-02T06:00:00\.000Z round done\\u009b2J/);
  for (const l of log) assert.ok(!CONTROL.test(l), JSON.stringify(l));
});
