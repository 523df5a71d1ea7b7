/**
 * Boundary guards a mutation audit (2026-12-02) found no test for: each test
 * below turned red with the named check deleted and is green with it. (The
 * A numbers are the audit's own; the header of tests/protocol/guards_test.ts
 * lists these guards as C7, C14 and I1.)
 *
 *   A1 lib/identity.ts assertNotRevoked: an entry's name alone revokes   → "a name-only revocation"
 *      (`sumshare certs --revoke NAME` with no NAME.crt writes serial
 *      and fingerprint null: "the name alone is refused, whatever
 *      certificate it shows")
 *   A18 lib/identity.ts parseRevocationList: the list is for this CA  → "a revocation list is
 *      (its fingerprint) and the CA's signature covers it                  refused"
 *      (tests/service/revocation_test checks both through processes)
 *   A20 lib/x509_der.ts time: a UTCTime that does not round-trip      → "a certificate time"
 *      (month 13, 31 February) is refused, not rolled into another date
 *      (x509_der_test's "31 February" case already catches the whole check;
 *      these add the other fields)
 *   A21 lib/net/connection.ts setMaxBufferedBytes: not before          → "the unread-bytes cap"
 *      raiseLimit (it would lift the pre-authentication cap of one
 *      frame), and never below one whole frame
 *   A6 lib/wire/messages.ts sortedList: entry lists (START participants, → "entry lists must be
 *      CONFIRMATIONS, SHARES, SEALED, REVEAL, SURVIVORS inputs, UNMASK     sorted"
 *      signatures) strictly ascending by name: one spelling per message
 *      (messages_test covers the plain name lists only)
 *   A9 lib/wire/messages.ts bounds: terms.max below p, a query of at    → "terms bounds", "entry
 *      most 200 characters, entry lists of at most 500 entries             lists are bounded"
 *   A14 lib/wire/messages.ts: ATTEST carries at most 32 values        → "attest values are bounded"
 *   A16 lib/wire/messages.ts: a partner bitmap is whole bytes of hex   → "a partner bitmap"
 *   A11 lib/wire/messages.ts: a certificate of at most 8,192            → "a certificate field"
 *      characters
 *   A12 lib/wire/messages.ts isIdle: the heartbeat's exact bytes, not   → "only the idle payload"
 *      a prefix of them (a cut-short frame is not a heartbeat)
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthError, ProtocolError } from "../lib/errors.ts";
import { Connection, type Link } from "../lib/net/connection.ts";
import { FRAME_HEADER_BYTES, FRAME_LIMIT } from "../lib/wire/frame.ts";
import {
  loadCaCertificate,
  loadIdentity,
  parseRevocationList,
  REVOCATION_FILE,
  trustRevocations,
  verifyPartyCertificate,
} from "../lib/identity.ts";
import { createConsortium, revokeParties } from "../lib/pki.ts";
import * as x509 from "@peculiar/x509";
import { DerError, readCertificate } from "../lib/x509_der.ts";
import { P_BIG } from "../lib/field.ts";
import {
  decodeMessage,
  encodeIdle,
  encodeMessage,
  isIdle,
  MAX_ATTESTED_VALUES,
  MAX_PARTICIPANTS,
  type Message,
  SEALED_BYTES,
  type Terms,
} from "../lib/wire/messages.ts";
import { makePki, removeDir } from "./helpers.ts";

Deno.test("a name-only revocation refuses the party's certificate, at load and at verification", async () => {
  const dir = await makePki(["hospital", "north", "south"]);
  const away = await Deno.makeTempDir({ prefix: "sumshare-audit-" });
  try {
    // south.crt is not in the CA's folder: the list can name south only.
    const southPem = await Deno.readTextFile(join(dir, "south.crt"));
    await Deno.rename(join(dir, "south.crt"), join(away, "south.crt"));
    await Deno.rename(join(dir, "south.key"), join(away, "south.key"));
    const { list, added } = await revokeParties(dir, ["south"]);
    assert.deepEqual(added.map((e) => [e.name, e.serial, e.fingerprint]), [["south", null, null]]);

    const caPem = await Deno.readTextFile(join(dir, "ca.crt"));
    const ca = await loadCaCertificate(caPem);
    const parsed = await parseRevocationList(
      await Deno.readTextFile(join(dir, REVOCATION_FILE)),
      ca,
    );
    assert.equal(parsed.sequence, list.sequence);
    trustRevocations(ca, parsed);
    await assert.rejects(
      verifyPartyCertificate(southPem, ca, "south", { use: "peer" }),
      (error: unknown) => error instanceof AuthError && /"south" is revoked/.test(error.message),
    );
    // Others stay accepted under the same list.
    const north = await verifyPartyCertificate(
      await Deno.readTextFile(join(dir, "north.crt")),
      ca,
      "north",
      { use: "peer" },
    );
    assert.equal(north.name, "north");
    // South itself, loading its identity with the list next to ca.crt, cannot start.
    await assert.rejects(
      loadIdentity("south", {
        ca: join(dir, "ca.crt"),
        cert: join(away, "south.crt"),
        key: join(away, "south.key"),
      }),
      (error: unknown) => error instanceof AuthError && /"south" is revoked/.test(error.message),
    );
  } finally {
    await removeDir(dir);
    await removeDir(away);
  }
});

Deno.test("entry lists must be sorted by name and without repeats, like name lists", () => {
  const session = "0123456789abcdef0123456789abcdef";
  const blob = new Uint8Array(SEALED_BYTES).fill(7);
  const signature = new Uint8Array(64).fill(9);
  const sealed = (to: string[]): Message => ({
    type: "sealed",
    session,
    shares: to.map((name) => ({ to: name, sealed: blob })),
  });
  const confirmations = (names: string[]): Message => ({
    type: "confirmations",
    session,
    confirmations: names.map((name) => ({ name, signature })),
  });
  // The sorted spelling decodes to the same message.
  assert.deepEqual(decodeMessage(encodeMessage(sealed(["a", "b"]))), sealed(["a", "b"]));
  assert.deepEqual(
    decodeMessage(encodeMessage(confirmations(["a", "b"]))),
    confirmations(["a", "b"]),
  );
  for (
    const message of [
      sealed(["b", "a"]),
      sealed(["a", "a"]),
      confirmations(["b", "a"]),
      confirmations(["a", "a"]),
    ]
  ) {
    assert.throws(
      () => decodeMessage(encodeMessage(message)),
      (error: unknown) =>
        error instanceof ProtocolError && /must be sorted by \w+ and without repeats/.test(
          error.message,
        ),
    );
  }
});

const SESSION = "0123456789abcdef0123456789abcdef";
/** Matches the codec's PEM form; the codec does not parse the certificate. */
const PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

function invite(terms: Partial<Terms>): Message {
  return {
    type: "invite",
    session: SESSION,
    hospitalCert: PEM,
    terms: {
      query: "sum",
      scale: 0,
      max: 1000n,
      maxRows: 1,
      mode: "nofn",
      threshold: 0,
      minContributors: 2,
      participants: 3,
      dimension: 1,
      ...terms,
    },
    signature: new Uint8Array(64).fill(3),
  };
}

function refused(message: Message, reason: RegExp): void {
  assert.throws(
    () => decodeMessage(encodeMessage(message)),
    (error: unknown) => error instanceof ProtocolError && reason.test(error.message),
  );
}

Deno.test("terms bounds: max below p and a query of at most 200 characters", () => {
  // 200 characters of the query grammar: the codec's limit, not the query parser's.
  const longest = "sum" + ":1".repeat(98) + "1";
  assert.equal(longest.length, 200);
  for (const terms of [{ max: P_BIG - 1n }, { query: longest }]) {
    const message = invite(terms);
    assert.deepEqual(decodeMessage(encodeMessage(message)), message);
  }
  refused(invite({ max: P_BIG }), /invite\.terms\.max must be an integer below p$/);
  refused(invite({ max: 2n ** 64n }), /invite\.terms\.max must be an integer below p$/);
  refused(invite({ query: longest + "1" }), /invite\.terms\.query must be a query spec$/);
});

Deno.test("entry lists are bounded: at most 500 entries", () => {
  const blob = new Uint8Array(SEALED_BYTES).fill(7);
  const names = (n: number) =>
    Array.from({ length: n }, (_, i) => `p${String(i).padStart(4, "0")}`);
  const sealed = (n: number): Message => ({
    type: "sealed",
    session: SESSION,
    shares: names(n).map((to) => ({ to, sealed: blob })),
  });
  assert.equal(decodeMessage(encodeMessage(sealed(MAX_PARTICIPANTS))).type, "sealed");
  refused(sealed(MAX_PARTICIPANTS + 1), /sealed\.shares must be a list of 1 to 500 entries$/);
});

Deno.test("a certificate field holds at most 8,192 characters", () => {
  // 125 full lines and a last one of `last` characters: 28 + 125 × 65 +
  // (last + 1) + 26 characters, so 12 gives exactly 8,192 and 13 one more.
  const pem = (last: number) =>
    "-----BEGIN CERTIFICATE-----\n" + `${"A".repeat(64)}\n`.repeat(125) +
    `${"A".repeat(last)}\n` + "-----END CERTIFICATE-----\n";
  assert.equal(pem(12).length, 8192);
  const ok: Message = { ...invite({}), hospitalCert: pem(12) } as Message;
  assert.deepEqual(decodeMessage(encodeMessage(ok)), ok);
  refused(
    { ...invite({}), hospitalCert: pem(13) } as Message,
    /invite\.hospitalCert must be one PEM certificate$/,
  );
});

Deno.test("only the idle payload itself is the heartbeat: no prefix, no other bytes", () => {
  const idle = encodeIdle();
  assert.ok(isIdle(idle));
  for (let n = 1; n < idle.length; n++) assert.ok(!isIdle(idle.subarray(0, n)), `prefix ${n}`);
  const other = idle.slice();
  other[other.length - 2] = 0x78;
  assert.ok(!isIdle(other));
  assert.ok(!isIdle(new Uint8Array([...idle, 0x20])));
});

Deno.test("attest values are bounded: 1 to 32 whole numbers", () => {
  const attest = (n: number): Message => ({
    type: "attest",
    session: SESSION,
    values: Array.from({ length: n }, (_, i) => i),
    signature: new Uint8Array(64).fill(5),
  });
  const most = attest(MAX_ATTESTED_VALUES);
  assert.deepEqual(decodeMessage(encodeMessage(most)), most);
  refused(
    attest(MAX_ATTESTED_VALUES + 1),
    /attest\.values must be a list of 1 to 32 whole numbers$/,
  );
  refused(attest(0), /attest\.values must be a list of 1 to 32 whole numbers$/);
});

Deno.test("a partner bitmap is whole bytes: an odd number of hex digits is refused", () => {
  const input = (partners: string): Message => ({
    type: "input",
    session: SESSION,
    length: 1,
    digest: "ab".repeat(32),
    seedCommit: "00".repeat(32),
    partners,
    signature: new Uint8Array(64).fill(1),
  });
  assert.deepEqual(decodeMessage(encodeMessage(input("f8"))), input("f8"));
  for (const partners of ["f", "f80", "f".repeat(125)]) {
    refused(input(partners), /input\.partners must be a bitmap of 1 to 63 bytes in lowercase hex$/);
  }
});

Deno.test("a revocation list is refused when changed, or issued for another CA", async () => {
  const dir = await makePki(["hospital", "north"]);
  const other = await makePki(["hospital"]);
  try {
    await revokeParties(dir, ["north"]);
    await revokeParties(other, ["north"]);
    const ca = await loadCaCertificate(await Deno.readTextFile(join(dir, "ca.crt")));
    const text = await Deno.readTextFile(join(dir, REVOCATION_FILE));
    const doc = JSON.parse(text);
    assert.equal((await parseRevocationList(text, ca)).entries.length, 1);
    const refusedList = async (changed: string, reason: RegExp) =>
      await assert.rejects(
        parseRevocationList(changed, ca),
        (error: unknown) => error instanceof AuthError && reason.test(error.message),
      );
    await refusedList(
      JSON.stringify({ ...doc, revoked: [] }),
      /the CA's signature does not verify/,
    );
    await refusedList(
      JSON.stringify({ ...doc, sequence: 7 }),
      /the CA's signature does not verify/,
    );
    // The other CA's own, validly signed list, relabelled or not: never this CA's.
    const foreign = JSON.parse(await Deno.readTextFile(join(other, REVOCATION_FILE)));
    await refusedList(JSON.stringify(foreign), /it was issued for another CA$/);
    await refusedList(
      JSON.stringify({ ...foreign, ca: doc.ca }),
      /the CA's signature does not verify/,
    );
  } finally {
    await removeDir(dir);
    await removeDir(other);
  }
});

Deno.test("a certificate time that is not a calendar time is refused, not rolled over", async () => {
  const consortium = await createConsortium(["north"]);
  const der = new Uint8Array(
    new x509.X509Certificate(consortium.parties.get("north")!.cert).rawData,
  );
  assert.equal(readCertificate(der).commonNames[0], "north");
  // The first UTCTime (tag 0x17, 13 bytes "YYMMDDhhmmssZ") is notBefore.
  const at = der.findIndex((b, i) => b === 0x17 && der[i + 1] === 0x0d && der[i + 14] === 0x5a);
  assert.ok(at > 0, "the certificate has a UTCTime");
  // [offset into "YYMMDDhhmmssZ", digits]: month 13, 31 February, 32 April, day 0, hour 24, second 60.
  const cases: [number, string][] = [[2, "13"], [2, "0231"], [2, "0432"], [4, "00"], [6, "24"], [
    10,
    "60",
  ]];
  for (const [offset, digits] of cases) {
    const bad = der.slice();
    bad.set(new TextEncoder().encode(digits), at + 2 + offset);
    assert.throws(
      () => readCertificate(bad),
      (error: unknown) =>
        error instanceof DerError && /^notBefore is not a valid time$/.test(error.message),
      `${offset}: ${digits}`,
    );
  }
});

Deno.test("the unread-bytes cap is set only after raiseLimit, and never below one frame", () => {
  const link: Link = {
    start: () => {},
    pause: () => {},
    resume: () => {},
    write: () => Promise.resolve(),
    close: () => {},
  };
  const conn = new Connection(link, { remote: "127.0.0.1:1", peer: "north", party: "north" });
  try {
    // Before the first message is accepted, one pre-authentication frame is all it may hold.
    assert.throws(
      () => conn.setMaxBufferedBytes(64 * (FRAME_HEADER_BYTES + FRAME_LIMIT)),
      /before the limit is raised/,
    );
    conn.raiseLimit();
    assert.throws(
      () => conn.setMaxBufferedBytes(FRAME_HEADER_BYTES + FRAME_LIMIT - 1),
      (error: unknown) =>
        error instanceof RangeError && /at least one whole frame/.test(error.message),
    );
    conn.setMaxBufferedBytes(FRAME_HEADER_BYTES + FRAME_LIMIT);
  } finally {
    conn.close();
  }
});
