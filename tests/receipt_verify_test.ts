/**
 * v2 receipts (sumshare-receipt/7): real rounds of the sans-I/O core in
 * memory with real certificates give receipts that verify; each change of a
 * field, re-signed by the hospital so that the receipt's outer signature
 * still holds, is caught by the inner check it names; duplicate keys, huge
 * numbers and certificates for the wrong use are refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lp } from "../lib/crypto/bytes.ts";
import { sign } from "../lib/crypto/signing.ts";
import { fromCanonicalBase64, toBase64, toHex } from "../lib/encoding.ts";
import { P, P2 } from "../lib/field.ts";
import {
  attestFields,
  doneFields,
  inputFields,
  inviteFields,
  linearCheckSeed,
  startHash,
} from "../lib/protocol/transcript.ts";
import { attestedProducts } from "../lib/crypto/linear_check.ts";
import { shapeOf } from "../lib/protocol/terms.ts";
import { decodeResult, encodeInput, type Layout, parseQuery } from "../lib/query.ts";
import {
  canonicalJson,
  checkReceiptTarget,
  createStarReceipt,
  InvalidReceiptError,
  parseReceipt,
  type Receipt,
  RECEIPT_FORMAT,
  verifyStarReceipt,
  writeReceiptFile,
} from "../lib/receipt.ts";
import { vectorDigest } from "../lib/crypto/digest.ts";
import type { RoundEvidence } from "../lib/protocol/evidence.ts";
import { MAX_ATTESTED_VALUES, MAX_SEGMENTS, type Terms } from "../lib/wire/messages.ts";
import { peerName, receiptPki, type ReceiptRound, runReceiptRound } from "./receipt_rounds.ts";

/** A receipt as loose JSON, for tests that change it field by field. */
// deno-lint-ignore no-explicit-any
type Loose = any;

const ECDSA = { name: "ECDSA", hash: "SHA-256" } as const;

/** Peer i's value in a sum round. */
function value(i: number): number {
  return 1000 + 37 * i;
}

function sumTerms(mode: "nofn" | "threshold", threshold: number): Omit<
  Terms,
  "participants" | "dimension"
> {
  return {
    query: "sum",
    scale: 0,
    max: 1_000_000n,
    maxRows: 1,
    mode,
    threshold,
    minContributors: 2,
  };
}

const DEADLINES = {
  joinMs: 1000,
  confirmMs: 1000,
  shareMs: 1000,
  inputMs: 1000,
  consistencyMs: 1000,
  unmaskMs: 1000,
};

/** 3 peers, n-of-n. */
function nofnRound(): Promise<ReceiptRound> {
  return runReceiptRound({
    peers: 3,
    terms: sumTerms("nofn", 0),
    inputs: (i) => Float64Array.of(value(i)),
  });
}

/**
 * 4 peers, T = 3, deadlines signed; p003 dies right after its masked input,
 * so the set is all four but only three sign it: every confirmation, input
 * and consistency signature in the receipt is one the checks need.
 */
function thresholdRound(): Promise<ReceiptRound> {
  return runReceiptRound({
    peers: 4,
    terms: { ...sumTerms("threshold", 3), deadlines: DEADLINES },
    inputs: (i) => Float64Array.of(value(i)),
    diesAfterInput: peerName(3),
  });
}

/** Peer i's variance rows: values near R, so that Σx² over 5 peers needs residues. */
function varianceRows(i: number): Float64Array {
  return Float64Array.from(
    { length: 2000 },
    (_, k) => 1_000_000 - ((k * 7919 + i * 104_729) % 1000),
  );
}

/** 5 peers, n-of-n variance whose Σx² takes two residues (mod p1, p2). */
function residueRound(): Promise<ReceiptRound> {
  return runReceiptRound({
    peers: 5,
    terms: {
      query: "variance",
      scale: 0,
      max: 1_000_000n,
      maxRows: 10_000,
      mode: "nofn",
      threshold: 0,
      minContributors: 2,
    },
    inputs: (i, layout) =>
      encodeInput(parseQuery("variance", 0), {
        values: varianceRows(i),
        where: (k) => `row ${k + 1}`,
      }, { scale: 0, layout }),
  });
}

async function receiptOf(round: ReceiptRound): Promise<Receipt> {
  return await createStarReceipt(round.evidence, round.outcome.result, round.hospital.signingKey);
}

/** `receipt` with its outer signature made again by `key` (a dishonest hospital signs anything). */
async function resigned(receipt: Loose, key: CryptoKey): Promise<Loose> {
  const { signature: _old, ...body } = receipt;
  const signature = await crypto.subtle.sign(
    ECDSA,
    key,
    lp("sumshare/2 receipt", canonicalJson(body)),
  );
  return { ...body, signature: toBase64(new Uint8Array(signature)) };
}

/** The base64 text of the same bytes with the last byte's low bit flipped. */
function flipped(text: string): string {
  const bytes = fromCanonicalBase64(text)!;
  bytes[bytes.length - 1]! ^= 1;
  return toBase64(bytes);
}

/**
 * The same bytes spelled non-canonically: padded base64 whose last data
 * character has a padding bit set (decoders that ignore those bits read
 * the same bytes).
 */
function nonCanonical(text: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const end = text.indexOf("=");
  assert.ok(end > 0, "needs padding");
  const i = end - 1;
  return text.slice(0, i) + alphabet[alphabet.indexOf(text[i]!) + 1] + text.slice(i + 1);
}

/** A one-element vector as the receipt stores it. */
function vectorText(...elements: number[]): string {
  return toBase64(new Uint8Array(Float64Array.from(elements).buffer));
}

async function rejects(receipt: unknown, ca: string, reason: RegExp, what: string): Promise<void> {
  await assert.rejects(
    verifyStarReceipt(receipt, ca),
    (error: unknown) => {
      assert.ok(error instanceof InvalidReceiptError, `${what}: ${error}`);
      assert.match(error.message, reason, what);
      return true;
    },
    `not caught: ${what}`,
  );
}

/** A change to a receipt, and the reason verification must give. */
type Change = [string, (r: Loose) => unknown, RegExp];

async function expectChanges(round: ReceiptRound, good: Receipt, changes: Change[]): Promise<void> {
  for (const [what, change, reason] of changes) {
    const copy = structuredClone(good) as Loose;
    await change(copy);
    assert.notEqual(canonicalJson(copy), canonicalJson(good), `${what} changed nothing`);
    await rejects(await resigned(copy, round.hospital.signingKey), round.pki.caPem, reason, what);
  }
}

/** Every single-field change of a JSON value: leaves altered, list items dropped or repeated. */
function* mutations(value: unknown): Generator<[string, (root: unknown) => unknown]> {
  const at = (
    root: unknown,
    change: (v: unknown) => unknown,
    keys: (string | number)[],
  ): unknown => {
    if (keys.length === 0) return change(root);
    const [key, ...rest] = keys;
    const copy = structuredClone(root) as Record<string | number, unknown>;
    copy[key!] = at(copy[key!], change, rest);
    return copy;
  };
  function* walk(
    v: unknown,
    keys: (string | number)[],
  ): Generator<[string, (root: unknown) => unknown]> {
    const where = keys.map((k) => `[${JSON.stringify(k)}]`).join("");
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        yield* walk(v[i], [...keys, i]);
        yield [
          `${where} without item ${i}`,
          (root) => at(root, (a) => (a as unknown[]).filter((_, j) => j !== i), keys),
        ];
      }
      if (v.length > 0) {
        yield [
          `${where} with item 0 repeated`,
          (root) => at(root, (a) => [...(a as unknown[]), (a as unknown[])[0]], keys),
        ];
      }
    } else if (typeof v === "object" && v !== null) {
      for (const key of Object.keys(v)) {
        yield* walk((v as Record<string, unknown>)[key], [...keys, key]);
        yield [`${where} without ${key}`, (root) =>
          at(root, (o) => {
            const { [key]: _gone, ...rest } = o as Record<string, unknown>;
            return rest;
          }, keys)];
      }
      yield [
        `${where} with an extra field`,
        (root) => at(root, (o) => ({ ...(o as Record<string, unknown>), extra: 1 }), keys),
      ];
    } else if (typeof v === "number") {
      yield [`${where} + 1`, (root) => at(root, (x) => (x as number) + 1, keys)];
    } else if (typeof v === "string") {
      if (/^[0-9]+$/.test(v)) {
        yield [
          `${where} + 1`,
          (root) => at(root, (x) => (BigInt(x as string) + 1n).toString(), keys),
        ];
      }
      // Change one character in the middle (a PEM body, a name, a signature, a digest…).
      const mid = Math.floor(v.length / 2);
      const swapped = v[mid] === "a" ? "b" : "a";
      yield [`${where} character ${mid} changed`, (root) =>
        at(root, (x) => {
          const s = x as string;
          return s.slice(0, mid) + swapped + s.slice(mid + 1);
        }, keys)];
    }
  }
  yield* walk(value, []);
}

/** Evidence with its signer lists in name order (the core lists them in arrival order). */
function sorted(evidence: RoundEvidence): RoundEvidence {
  const byName = <T extends { name: string }>(list: readonly T[]) =>
    [...list].sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    ...evidence,
    confirmations: byName(evidence.confirmations),
    inputs: byName(evidence.inputs),
    consistency: byName(evidence.consistency),
  };
}

Deno.test("the core's evidence is exactly the statements that went over the wire", async () => {
  for (const round of [await nofnRound(), await thresholdRound(), await residueRound()]) {
    assert.deepEqual(sorted(round.evidence), sorted(round.recorded));
  }
});

Deno.test("n-of-n, threshold and residue receipts of real rounds verify", async () => {
  const ca = (await receiptPki()).caPem;
  const nofn = await nofnRound();
  const nofnReceipt = await receiptOf(nofn);
  assert.equal(nofnReceipt.format, RECEIPT_FORMAT);
  const a = await verifyStarReceipt(JSON.parse(JSON.stringify(nofnReceipt)), ca);
  const names = [0, 1, 2].map(peerName);
  assert.deepEqual(a.sum, Float64Array.of(value(0) + value(1) + value(2)));
  assert.deepEqual(a.result, { sum: value(0) + value(1) + value(2) });
  assert.equal(a.mode, "nofn");
  assert.deepEqual(a.participants, names);
  assert.deepEqual(a.confirmed, names);
  assert.deepEqual(a.contributors, names);
  assert.deepEqual(a.agreed, []);
  assert.equal(a.hospital, "hospital");
  assert.equal(a.startHash, nofn.outcome.startHash);
  assert.equal(a.terms.max, 1_000_000n);

  const threshold = await thresholdRound();
  const t = await verifyStarReceipt(JSON.parse(JSON.stringify(await receiptOf(threshold))), ca);
  const four = [0, 1, 2, 3].map(peerName);
  assert.deepEqual(t.contributors, four, "p003's input is in the sum although it left");
  assert.deepEqual(t.agreed, four.slice(0, 3));
  assert.deepEqual(t.result, { sum: four.reduce((s, _, i) => s + value(i), 0) });
  assert.equal(t.threshold, 3);
  assert.deepEqual(t.terms.deadlines, DEADLINES);

  const residues = await residueRound();
  const r = await verifyStarReceipt(JSON.parse(JSON.stringify(await receiptOf(residues))), ca);
  let [sum, squares, rows] = [0n, 0n, 0n];
  for (let i = 0; i < 5; i++) {
    for (const x of varianceRows(i)) {
      [sum, squares, rows] = [sum + BigInt(x), squares + BigInt(x) ** 2n, rows + 1n];
    }
  }
  assert.ok(squares > BigInt(P), "Σx² must pass p1 for this case to need residues");
  assert.equal(r.sum.length, 4);
  assert.equal(r.result["sum"], Number(sum));
  assert.equal(r.result["count"], Number(rows));
  assert.equal(
    r.result["variance"],
    Number(rows * squares - sum * sum) / Number(rows * rows),
  );
});

Deno.test("each field of a threshold receipt, changed and re-signed, fails the check that guards it", async () => {
  const round = await thresholdRound();
  const good = await receiptOf(round);
  const key = round.hospital.signingKey;
  const session = good.session;
  const changes: Change[] = [
    [
      "format",
      (r) => r.format = "sumshare-receipt/3",
      /^unknown receipt format "sumshare-receipt\/3"$/,
    ],
    ["an extra field", (r) => r.extra = 1, /^receipt must have exactly the fields/],
    [
      "session spelling",
      (r) => r.session = session.toUpperCase(),
      /^session is not 32 lowercase hex/,
    ],
    [
      "session",
      (r) => r.session = session.replace(/^./, session[0] === "0" ? "1" : "0"),
      /^the INVITE signature does not match the session and terms$/,
    ],
    ["terms.query", (r) => r.terms.query = "count", /^the INVITE signature does not match/],
    ["terms.scale", (r) => r.terms.scale = 1, /^the INVITE signature does not match/],
    ["terms.max", (r) => r.terms.max = "1000001", /^the INVITE signature does not match/],
    ["terms.max spelling", (r) => r.terms.max = "01000000", /^terms\.max is not a decimal integer/],
    [
      "terms.max ≥ p",
      (r) => r.terms.max = String(P),
      /^terms\.max is not a decimal integer below p/,
    ],
    ["terms.maxRows", (r) => r.terms.maxRows = 2, /^the INVITE signature does not match/],
    [
      "terms.mode",
      (r) => r.terms.mode = "nofn",
      /^the terms cannot be run: an n-of-n round has threshold 0$/,
    ],
    ["terms.mode spelling", (r) => r.terms.mode = "additive", /^terms\.mode is neither/],
    ["terms.threshold", (r) => r.terms.threshold = 4, /^the INVITE signature does not match/],
    ["terms.minContributors", (r) => r.terms.minContributors = 3, /^the INVITE signature/],
    ["terms.participants", (r) => r.terms.participants = 5, /^the INVITE signature/],
    [
      "terms.dimension",
      (r) => r.terms.dimension = 2,
      /^the terms cannot be run: dimension 2 does not match the layout/,
    ],
    ["terms.deadlines", (r) => r.terms.deadlines.inputMs = 999, /^the INVITE signature/],
    ["terms without deadlines", (r) => delete r.terms.deadlines, /^the INVITE signature/],
    [
      "terms.deadlines extra",
      (r) => r.terms.deadlines.x = 1,
      /^terms\.deadlines must have exactly/,
    ],
    ["hospital.name", (r) => r.hospital.name = "p000", /^hospital certificate: /],
    ["hospital.cert", (r) => r.hospital.cert = good.roster[0]!.cert, /^hospital certificate: /],
    [
      "inviteSignature",
      (r) => r.inviteSignature = flipped(good.inviteSignature),
      /^the INVITE signature/,
    ],
    [
      "roster[1].cert",
      (r) => r.roster[1].cert = good.roster[2]!.cert,
      /^certificate of p001: /,
    ],
    ["roster[3].name", (r) => r.roster[3].name = "p004", /^certificate of p004: /],
    [
      "the hospital in the roster",
      (r) => r.roster[0] = { ...good.roster[0], name: "hospital", cert: good.hospital.cert },
      /^the hospital is listed in the roster$/,
    ],
    [
      "roster[1].sealKey",
      (r) => r.roster[1].sealKey = flipped(good.roster[1]!.sealKey),
      /^the JOIN signature of p001 does not match its session keys$/,
    ],
    [
      "roster[1].maskKey",
      (r) => r.roster[1].maskKey = flipped(good.roster[1]!.maskKey),
      /^the JOIN signature of p001/,
    ],
    [
      "roster[1].signature",
      (r) => r.roster[1].signature = flipped(good.roster[1]!.signature),
      /^the JOIN signature of p001/,
    ],
    ["roster swapped", (r) => r.roster.reverse(), /^roster is not sorted by name without repeats$/],
    [
      "roster without p003",
      (r) => r.roster.pop(),
      /^startHash is not the hash of the terms and roster$/,
    ],
    ["roster of one", (r) => r.roster = r.roster.slice(0, 1), /^roster has fewer than 2 items$/],
    [
      "roster larger than N",
      (r) => r.roster.push({ ...good.roster[3]!, name: "p004" }),
      /^roster has more than 4 items$/,
    ],
    [
      "roster too small for T",
      (r) => r.roster = r.roster.slice(0, 2),
      /^the roster cannot run the terms: threshold 3/,
    ],
    [
      "startHash",
      (r) => r.startHash = r.startHash.replace(/^./, r.startHash[0] === "0" ? "1" : "0"),
      /^startHash is not the hash/,
    ],
    [
      "confirmations[0].signature",
      (r) => r.confirmations[0].signature = flipped(good.confirmations[0]!.signature),
      /^the confirmation of p000 does not match the START hash$/,
    ],
    [
      "confirmations[3].name",
      (r) => r.confirmations[3].name = "p004",
      /^the confirmation of p004 is not from a roster member$/,
    ],
    [
      "confirmations without p000",
      (r) => r.confirmations.shift(),
      /^a member of the set did not confirm the START hash$/,
    ],
    [
      "confirmations: two left",
      (r) => r.confirmations = r.confirmations.slice(0, 2),
      /^2 confirmations, fewer than the 3 needed$/,
    ],
    [
      "confirmations repeated",
      (r) => r.confirmations.push(good.confirmations[0]),
      /^confirmations is not sorted/,
    ],
    [
      "set with a stranger",
      (r) => r.set.push("p004"),
      /^a member of the set is not in the roster$/,
    ],
    [
      "set of two",
      (r) => r.set = r.set.slice(0, 2),
      /^the set has 2 members, fewer than the 3 needed$/,
    ],
    [
      "set without p003",
      (r) => r.set.pop(),
      /^the inputs are not one commitment per member of the set$/,
    ],
    ["set unsorted", (r) => r.set.reverse(), /^set is not sorted by name/],
    [
      "inputs without p003",
      (r) => r.inputs.pop(),
      /^the inputs are not one commitment per member of the set$/,
    ],
    [
      "inputs[0].length",
      (r) => r.inputs[0].length = 2,
      /^the input of p000 has 2 elements, not the dimension 1$/,
    ],
    [
      "inputs[0].digest",
      (r) => r.inputs[0].digest = r.inputs[1].digest,
      /^the input commitment of p000 does not match its signature$/,
    ],
    [
      "inputs[0].signature",
      (r) => r.inputs[0].signature = flipped(good.inputs[0]!.signature),
      /^the input commitment of p000 does not match its signature$/,
    ],
    [
      "inputs[0].partners, re-signed by p000 itself without p001",
      async (r) => {
        const entry = r.inputs[0];
        entry.partners = "0d"; // p000, p002, p003
        const fields = inputFields(session, fromHex(good.startHash), entry);
        entry.signature = toBase64(await sign(round.pki.peers[0]!.signingKey, "input", fields));
      },
      /^p000 did not mask with every member of the set$/,
    ],
    [
      "inputs[0].partners not a roster bitmap",
      (r) => r.inputs[0].partners = "0f00",
      /^the partner set of p000 is not a bitmap of the roster$/,
    ],
    [
      "inputs[0].seedCommit",
      (r) => r.inputs[0].seedCommit = r.inputs[1].seedCommit,
      /^the input commitment of p000 does not match its signature$/,
    ],
    [
      "consistency[0].signature",
      (r) => r.consistency[0].signature = flipped(good.consistency[0]!.signature),
      /^the consistency signature of p000 does not match the set$/,
    ],
    [
      "consistency without p000",
      (r) => r.consistency.shift(),
      /^2 consistency signatures, fewer than the threshold 3$/,
    ],
    [
      "consistency from outside the set",
      (r) => r.consistency[2].name = "p004",
      /^the consistency signature of p004 is not from the set$/,
    ],
    [
      "consistency signed by p001 as p003",
      (r) => r.consistency[2] = { name: "p003", signature: good.consistency[1]!.signature },
      /^the consistency signature of p003 does not match the set$/,
    ],
    ["sum", (r) => r.sum = vectorText(1), /^the sum does not match resultDigest$/],
    ["sum length", (r) => r.sum = vectorText(1, 2), /^sum is not a vector of 1 elements$/],
    [
      "sum not a field element",
      (r) => r.sum = vectorText(P),
      /^sum holds a value that is not a field element/,
    ],
    ["sum −0", (r) => r.sum = vectorText(-0), /^sum holds a value that is not a field element/],
    [
      "resultDigest",
      (r) => r.resultDigest = r.inputs[0].digest,
      /^the sum does not match resultDigest$/,
    ],
    [
      "sum and resultDigest together",
      async (r) => {
        r.sum = vectorText(4000);
        r.resultDigest = await vectorDigest(Float64Array.of(4000));
        r.result = { sum: 4000 };
      },
      /^the DONE signature does not match the set and resultDigest$/,
    ],
    ["doneSignature", (r) => r.doneSignature = flipped(good.doneSignature), /^the DONE signature/],
    [
      "a sum beyond |set| × R, signed in DONE",
      async (r) => {
        const sum = Float64Array.of(4 * 1_000_000 + 1);
        r.sum = vectorText(sum[0]!);
        r.resultDigest = await vectorDigest(sum);
        r.doneSignature = toBase64(
          await sign(
            key,
            "done",
            doneFields(session, fromHex(good.startHash), good.set, r.resultDigest),
          ),
        );
        r.result = { sum: sum[0] };
      },
      /^the sum is larger than the set's inputs allow$/,
    ],
    [
      "result",
      (r) => r.result.sum += 1,
      /^the result does not match the statistics decoded from the sum$/,
    ],
    [
      "result with an extra key",
      (r) => r.result.mean = 1,
      /^the result does not match the statistics/,
    ],
    [
      "max re-signed by the hospital alone (INVITE and startHash remade)",
      async (r) => {
        const terms = { ...round.terms, max: 2_000_000n };
        r.terms.max = "2000000";
        r.inviteSignature = toBase64(await sign(key, "invite", inviteFields(session, terms)));
        r.startHash = toHex(await startHash(session, terms, round.evidence.roster));
      },
      /^the confirmation of p000 does not match the START hash$/,
    ],
  ];
  // One spelling per value, and the right type before any use.
  changes.push(
    ["hospital not an object", (r) => r.hospital = "hospital", /^hospital is not an object$/],
    ["roster[0] null", (r) => r.roster[0] = null, /^roster\[0\] is not an object$/],
    ["terms.query a number", (r) => r.terms.query = 5, /^terms\.query is not text$/],
    ["set not a list", (r) => r.set = "p000", /^set is not a list$/],
    ["set[0] spelling", (r) => r.set[0] = "P000", /^set\[0\] is not a party name$/],
    [
      "startHash spelling",
      (r) => r.startHash = r.startHash.toUpperCase(),
      /^startHash is not 64 hex/,
    ],
    [
      "roster[1].sealKey spelling",
      (r) => r.roster[1].sealKey = nonCanonical(good.roster[1]!.sealKey),
      /^roster\[1\]\.sealKey is not canonical base64$/,
    ],
    ["sum spelling", (r) => r.sum = nonCanonical(good.sum), /^sum is not canonical base64$/],
    [
      "roster[0].cert with CRLF (the same DER)",
      (r) => r.roster[0].cert = good.roster[0]!.cert.replaceAll("\n", "\r\n"),
      /^roster\[0\]\.cert is not one PEM certificate$/,
    ],
  );
  await expectChanges(round, good, changes);
  // The outer signature itself.
  await rejects(
    { ...good, signature: flipped(good.signature) },
    round.pki.caPem,
    /^the hospital's signature does not match the receipt$/,
    "signature",
  );
  await rejects(
    { ...good, result: { sum: 1 } },
    round.pki.caPem,
    /^the hospital's signature does not match the receipt$/,
    "not re-signed",
  );
});

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
}

Deno.test("each n-of-n rule, changed and re-signed, fails", async () => {
  const round = await nofnRound();
  const good = await receiptOf(round);
  await expectChanges(round, good, [
    [
      "a self-seed commitment in n-of-n",
      (r) => r.inputs[0].seedCommit = "1".repeat(64),
      /^the input of p000 commits to a self seed in an n-of-n round$/,
    ],
    [
      "a consistency signature in n-of-n",
      (r) => r.consistency = [good.confirmations[0]],
      /^an n-of-n round has no consistency signatures$/,
    ],
    [
      "a set short of the roster",
      (r) => r.set.pop(),
      /^an n-of-n round's set is not the whole roster$/,
    ],
    [
      "a confirmation short",
      (r) => r.confirmations.pop(),
      /^2 confirmations, fewer than the 3 needed$/,
    ],
  ]);
});

Deno.test("a threshold set smaller than the roster: bounds count the set, not the roster", async () => {
  // 5 peers, T = 3, at least 4 contributors: p004 confirms, shares its
  // keys, then dies before its input.
  const round = await runReceiptRound({
    peers: 5,
    terms: { ...sumTerms("threshold", 3), minContributors: 4 },
    inputs: (i) => Float64Array.of(value(i)),
    diesBeforeInput: peerName(4),
  });
  const good = await receiptOf(round);
  const four = [0, 1, 2, 3].map(peerName);
  const verified = await verifyStarReceipt(good, round.pki.caPem);
  assert.deepEqual(verified.participants, [...four, peerName(4)]);
  assert.deepEqual(verified.confirmed, [...four, peerName(4)]);
  assert.deepEqual(verified.contributors, four);
  assert.deepEqual(verified.result, { sum: four.reduce((s, _, i) => s + value(i), 0) });
  const key = round.hospital.signingKey;
  await expectChanges(round, good, [
    [
      "a sum above 4 × R but within 5 × R, signed in DONE",
      async (r) => {
        const sum = Float64Array.of(4 * 1_000_000 + 1);
        r.sum = vectorText(sum[0]!);
        r.resultDigest = await vectorDigest(sum);
        r.doneSignature = toBase64(
          await sign(
            key,
            "done",
            doneFields(good.session, fromHex(good.startHash), good.set, r.resultDigest),
          ),
        );
        r.result = { sum: sum[0] };
      },
      /^the sum is larger than the set's inputs allow$/,
    ],
    [
      "a set of 3 ≥ T but below the 4 contributors the terms require",
      (r) => r.set.pop(),
      /^the set has 3 members, fewer than the 4 needed$/,
    ],
    [
      "p004 added to the set without an input",
      (r) => r.set.push(peerName(4)),
      /^the inputs are not one commitment per member of the set$/,
    ],
  ]);
  // A confirmation beyond what the checks need may be left out: the receipt
  // then shows (and proves) one confirmer fewer.
  const fewer = structuredClone(good) as Loose;
  fewer.confirmations.pop();
  const shown = await verifyStarReceipt(await resigned(fewer, key), round.pki.caPem);
  assert.deepEqual(shown.confirmed, four);
});

Deno.test("a residue receipt refuses an element that is below p1 but not below its segment's p2", async () => {
  const round = await residueRound();
  const good = await receiptOf(round);
  const sum = round.outcome.result;
  // The layout for 5 peers is p1 × 2, p2 × 1, p1 × 1: element 2 is Σx² mod p2.
  assert.deepEqual(round.outcome.layout.segments.map((s) => s.modulus), [P, P2, P]);
  const forged = Float64Array.from(sum);
  forged[2] = P2;
  const key = round.hospital.signingKey;
  await expectChanges(round, good, [[
    "Σx² mod p2 replaced by p2, signed in DONE",
    async (r) => {
      r.sum = toBase64(new Uint8Array(forged.buffer));
      r.resultDigest = await vectorDigest(forged);
      r.doneSignature = toBase64(
        await sign(
          key,
          "done",
          doneFields(good.session, fromHex(good.startHash), good.set, r.resultDigest),
        ),
      );
    },
    /^sum holds a value that is not a field element of its segment$/,
  ]]);
});

Deno.test("every single-field change of a good receipt, re-signed, is refused", async () => {
  const rounds = [await nofnRound(), await thresholdRound(), await residueRound()];
  // A dropped holder: its mask secret is in the receipt, and each change to it must fail too.
  rounds.push(await dropoutRound());
  for (const round of rounds) {
    const good = JSON.parse(JSON.stringify(await receiptOf(round)));
    let count = 0;
    for (const [what, mutate] of mutations(good)) {
      // The outer signature is remade for every change; its own checks are tested above.
      if (what.startsWith(`["signature"]`) || what === " without signature") continue;
      const forged = await resigned(mutate(good), round.hospital.signingKey);
      if (/^\["attestations"\] without item \d+$/.test(what)) {
        // The hospital may always leave an attestation out: the receipt is
        // still valid, but no longer proves the result, and says whose is missing.
        const index = Number(/\d+$/.exec(what)![0]);
        const verified = await verifyStarReceipt(forged, round.pki.caPem);
        assert.equal(verified.linearCheck, "not proven", what);
        assert.ok(verified.unattested.includes(good.attestations[index].name), what);
        count++;
        continue;
      }
      const confirmation = /^\["confirmations"\] without item (\d+)$/.exec(what);
      if (confirmation && !good.set.includes(good.confirmations[Number(confirmation[1])].name)) {
        // A confirmation from a roster member outside the set (the dropout's) is
        // not one the checks need: leaving it out still verifies.
        await verifyStarReceipt(forged, round.pki.caPem);
        count++;
        continue;
      }
      await assert.rejects(
        verifyStarReceipt(forged, round.pki.caPem),
        InvalidReceiptError,
        `not caught: ${what}`,
      );
      count++;
    }
    assert.ok(count > 100, `only ${count} mutations`);
  }
});

Deno.test("the hospital certificate must be for the hospital's use, and each roster certificate for a peer's", async () => {
  const ca = (await receiptPki()).caPem;
  // Whole rounds run with these certificates (the in-memory core checks chain
  // and name only), so the role policy is the one thing that is wrong.
  const asPeer = await runReceiptRound({
    peers: 3,
    terms: sumTerms("nofn", 0),
    inputs: (i) => Float64Array.of(value(i)),
    hospitalAsPeer: true,
  });
  await rejects(
    await receiptOf(asPeer),
    ca,
    /^hospital certificate: .*serverAuth/,
    "a peer's certificate as the hospital's",
  );
  const asHospital = await runReceiptRound({
    peers: 3,
    terms: sumTerms("nofn", 0),
    inputs: (i) => Float64Array.of(value(i)),
    peerAsHospital: true,
  });
  await rejects(
    await receiptOf(asHospital),
    ca,
    /^certificate of p001: .*clientAuth/,
    "a hospital's certificate in the roster",
  );
  // Another consortium's CA accepts none of it.
  const other = await runReceiptRound({
    peers: 3,
    terms: sumTerms("nofn", 0),
    inputs: (i) => Float64Array.of(value(i)),
  });
  const { createConsortium } = await import("../lib/pki.ts");
  const foreign = (await createConsortium(["x"])).ca.cert;
  await rejects(await receiptOf(other), foreign, /^hospital certificate: /, "another CA");
});

Deno.test("a receipt with a key twice is refused, and a file round-trips at 0600", async () => {
  const round = await nofnRound();
  const good = await receiptOf(round);
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "receipt.json");
    await checkReceiptTarget(file);
    await assert.rejects(Deno.stat(file), Deno.errors.NotFound, "the check leaves no file");
    await writeReceiptFile(file, good);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const text = await Deno.readTextFile(file);
    const verified = await verifyStarReceipt(parseReceipt(text), round.pki.caPem);
    assert.deepEqual(verified.result, good.result);
    const forgeries: [string, string, string][] = [
      ["top level", text.replace("{\n", '{\n  "result": {"sum": 123456},\n'), "result"],
      ["escaped", text.replace("{\n", '{\n  "resul\\u0074": {"sum": 123456},\n'), "result"],
      [
        "in the roster",
        text.replace('"roster": [\n    {', '"roster": [\n    {"name": "p002", '),
        "name",
      ],
      ["in the terms", text.replace('"terms": {', '"terms": {"max": "9", '), "max"],
    ];
    for (const [what, forged, key] of forgeries) {
      assert.deepEqual(JSON.parse(forged), JSON.parse(text), `${what}: JSON.parse cannot tell`);
      assert.throws(
        () => parseReceipt(forged),
        {
          name: "InvalidReceiptError",
          message: new RegExp(
            `^the key "${key}" appears twice in one object \\(at offset \\d+\\)$`,
          ),
        },
        what,
      );
    }
    assert.throws(() => parseReceipt("{"), /^InvalidReceiptError: the file is not strict JSON/);
    // A hundred thousand levels would overflow a recursive walk; refused by depth.
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    assert.throws(() => parseReceipt(deep), /nesting too deep/);
    const ok = "[".repeat(16) + "]".repeat(16);
    assert.deepEqual(parseReceipt(ok), JSON.parse(ok));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every number and length is bounded before use, even when the hospital signed it", async () => {
  const round = await thresholdRound();
  const good = await receiptOf(round);
  const cert = good.roster[0]!.cert;
  const cases: [string, (r: Loose) => void, RegExp][] = [
    [
      "scale 4·10^6",
      (r) => r.terms.scale = 4_000_000,
      /^terms\.scale is not a whole number from 0 to 15$/,
    ],
    ["maxRows 2^40", (r) => r.terms.maxRows = 2 ** 40, /^terms\.maxRows is not a whole number/],
    [
      "max of 10^6 digits",
      (r) => r.terms.max = "9".repeat(1_000_000),
      /^terms\.max is not a decimal/,
    ],
    ["threshold 10^9", (r) => r.terms.threshold = 1e9, /^terms\.threshold is not a whole number/],
    ["participants 10^9", (r) => r.terms.participants = 1e9, /^terms\.participants is not a whole/],
    [
      "dimension 2^40",
      (r) => r.terms.dimension = 2 ** 40,
      /^terms\.dimension is not a whole number/,
    ],
    [
      "deadline 10^300",
      (r) => r.terms.deadlines.joinMs = 1e300,
      /^terms\.deadlines\.joinMs is not/,
    ],
    [
      "a long query",
      (r) => r.terms.query = "sum".padEnd(1_000_000, " "),
      /^terms\.query is longer/,
    ],
    [
      "501 roster entries",
      (r) =>
        r.roster = Array.from({ length: 501 }, (_, i) => ({ ...good.roster[0], name: `q${i}` })),
      /^roster has more than 4 items$/,
    ],
    [
      "a huge certificate",
      (r) => r.roster[0].cert = "A".repeat(1_000_000),
      /^roster\[0\]\.cert is longer/,
    ],
    [
      "input length 10^12",
      (r) => r.inputs[0].length = 1e12,
      /^inputs\[0\]\.length is not a whole number/,
    ],
    ["a huge sum", (r) => r.sum = "A".repeat(10_000_000), /^sum is not a vector of 1 elements$/],
    [
      "a huge signature",
      (r) => r.doneSignature = "A".repeat(1_000_000),
      /^doneSignature is not 64 bytes/,
    ],
    [
      "a set of 10^5 names",
      (r) => r.set = Array.from({ length: 100_000 }, (_, i) => `s${i}`),
      /^set has more than 500 items$/,
    ],
    [
      "a huge hospital certificate",
      (r) => r.hospital.cert = cert.repeat(1000),
      /^hospital\.cert is longer/,
    ],
  ];
  for (const [what, change, reason] of cases) {
    const copy = structuredClone(good) as Loose;
    change(copy);
    const forged = await resigned(copy, round.hospital.signingKey);
    const began = performance.now();
    await rejects(forged, round.pki.caPem, reason, what);
    // The point is no work proportional to the number (2^40 elements, 10^12 rows), which would
    // take minutes or run out of memory; parsing a 1 MB receipt itself takes ~0.6 s on a loaded
    // 2-core machine, so the bound is generous.
    assert.ok(performance.now() - began < 5_000, `${what} took ${performance.now() - began} ms`);
  }
  await rejects(
    { ...good, signature: "A".repeat(1_000_000) },
    round.pki.caPem,
    /^signature is not 64 bytes of base64$/,
    "a huge outer signature",
  );
});

Deno.test("createStarReceipt refuses a result that is not the one the hospital signed", async () => {
  const round = await nofnRound();
  await assert.rejects(
    createStarReceipt(round.evidence, Float64Array.of(1), round.hospital.signingKey),
    { name: "InvalidReceiptError", message: /does not match the digest the hospital signed/ },
  );
});

Deno.test("parseReceipt reads JSON numbers as JSON does, and only JSON", () => {
  const text = '{"mean":-1.5e3,"bins":[0.25,0,7],"nested":{"x":1E-2}}';
  assert.deepEqual(parseReceipt(text), JSON.parse(text));
  for (const bad of ['{"a":01}', '{"a":1.}', '{"a":+1}', '{"a":.5}', '{"a":1e}', '{"a":NaN}']) {
    assert.throws(() => JSON.parse(bad));
    assert.throws(() => parseReceipt(bad), InvalidReceiptError, bad);
  }
});

// ---------------------------------------------------------------------------
// The linear check: the result is the unmasked sum of the attested inputs.

/** 4 peers, T = 3; p003 never sends its masked input, so it drops out and its mask is removed. */
function dropoutRound(query = "sum", inputs = (i: number) => Float64Array.of(value(i))) {
  return runReceiptRound({
    peers: 4,
    terms: { ...sumTerms("threshold", 3), query, deadlines: DEADLINES },
    inputs: (i) => inputs(i),
    diesBeforeInput: peerName(3),
  });
}

function layoutOf(round: ReceiptRound): Layout {
  const shape = shapeOf(round.terms);
  if (typeof shape === "string") throw new Error(shape);
  return shape.layout;
}

/**
 * `good` with its result changed by `change` as a dishonest hospital would
 * publish it: DONE re-signed over the changed result, and every member that
 * attested in `good` attesting again, honestly (⟨r, y⟩ of the masked vector
 * it really sent, for the r the new DONE fixes), as an honest survivor
 * answers whatever result DONE names. Re-signed by the hospital.
 */
async function published(
  round: ReceiptRound,
  good: Receipt,
  change: (sum: Float64Array) => void,
): Promise<Loose> {
  const layout = layoutOf(round);
  const sum = new Float64Array(fromCanonicalBase64(good.sum)!.buffer);
  change(sum);
  const copy = structuredClone(good) as Loose;
  const resultDigest = await vectorDigest(sum);
  const hash = fromHex(good.startHash);
  copy.sum = toBase64(new Uint8Array(sum.buffer));
  copy.resultDigest = resultDigest;
  copy.doneSignature = toBase64(
    await sign(
      round.hospital.signingKey,
      "done",
      doneFields(good.session, hash, good.set, resultDigest),
    ),
  );
  copy.result = JSON.parse(JSON.stringify(
    decodeResult(parseQuery(round.terms.query, round.terms.scale), sum, round.terms.scale, layout),
  ));
  const seed = await linearCheckSeed(good.session, hash, good.set, resultDigest);
  copy.attestations = await Promise.all(good.attestations.map(async ({ name }) => {
    const values = await attestedProducts(seed, round.masked.get(name)!, layout.segments);
    const key = round.pki.peers.find((p) => p.name === name)!.signingKey;
    const signature = await sign(
      key,
      "attest",
      attestFields(good.session, hash, resultDigest, values),
    );
    return { name, values, signature: toBase64(signature) };
  }));
  return await resigned(copy, round.hospital.signingKey);
}

const LINEAR = /^the result is not the unmasked sum of the attested inputs/;

Deno.test("a receipt proves its result when every member attested", async () => {
  const ca = (await receiptPki()).caPem;
  for (const round of [await nofnRound(), await residueRound(), await dropoutRound()]) {
    const receipt = await receiptOf(round);
    assert.equal(receipt.attestations.length, receipt.set.length);
    const verified = await verifyStarReceipt(JSON.parse(JSON.stringify(receipt)), ca);
    assert.equal(verified.linearCheck, "proven", round.terms.query);
    assert.deepEqual(verified.unattested, []);
  }
  const dropout = await receiptOf(await dropoutRound());
  assert.deepEqual(dropout.set, [0, 1, 2].map(peerName));
  assert.deepEqual(dropout.selfSeeds.map((b) => b.name), dropout.set);
  assert.deepEqual(dropout.maskSecrets.map((d) => d.name), [peerName(3)]);
});

Deno.test("a survivor that leaves right after DONE leaves the result not proven, named", async () => {
  const ca = (await receiptPki()).caPem;
  const round = await runReceiptRound({
    peers: 3,
    terms: sumTerms("nofn", 0),
    inputs: (i) => Float64Array.of(value(i)),
    diesAfterDone: peerName(1),
  });
  const receipt = await receiptOf(round);
  const verified = await verifyStarReceipt(JSON.parse(JSON.stringify(receipt)), ca);
  assert.equal(verified.linearCheck, "not proven");
  assert.deepEqual(verified.unattested, [peerName(1)]);
  assert.deepEqual(verified.result, { sum: value(0) + value(1) + value(2) });
  // The same holds for a threshold survivor that left before DONE.
  const threshold = await verifyStarReceipt(
    JSON.parse(JSON.stringify(await receiptOf(await thresholdRound()))),
    ca,
  );
  assert.equal(threshold.linearCheck, "not proven");
  assert.deepEqual(threshold.unattested, [peerName(3)]);
});

Deno.test("a result off by one in one element fails the linear check, though DONE and every attestation are signed", async () => {
  const ca = (await receiptPki()).caPem;
  const vectorInputs = (i: number) => Float64Array.from({ length: 4 }, (_, k) => 10 * i + k);
  const rounds: [string, ReceiptRound][] = [
    ["n-of-n scalar", await nofnRound()],
    ["threshold scalar with a dropout", await dropoutRound()],
    ["threshold vector with a dropout", await dropoutRound("vector:4", vectorInputs)],
    ["n-of-n residues", await residueRound()],
  ];
  for (const [what, round] of rounds) {
    const good = await receiptOf(round);
    // Control: the same re-publication of the true result is proven.
    const same = await verifyStarReceipt(await published(round, good, () => {}), ca);
    assert.equal(same.linearCheck, "proven", what);
    const last = layoutOf(round).dimension - 1;
    for (const index of new Set([0, last])) {
      const forged = await published(round, good, (sum) => {
        sum[index] = sum[index]! + 1;
      });
      await rejects(forged, ca, LINEAR, `${what}, element ${index} + 1`);
    }
  }
});

Deno.test("attestations, self seeds and mask secrets are each checked", async () => {
  const round = await dropoutRound();
  const good = await receiptOf(round);
  await expectChanges(round, good, [
    [
      "an attestation value changed (nobody re-signed it)",
      (r) => r.attestations[0].values[0] = (r.attestations[0].values[0] + 1) % P,
      /^the attestation of p000 does not match its signature$/,
    ],
    [
      "an attestation value at its segment's modulus",
      (r) => r.attestations[0].values[0] = P,
      /^attestations\[0\]\.values\[0\] is not a whole number/,
    ],
    [
      "an attestation from outside the set",
      (r) => r.attestations.push({ ...r.attestations[0], name: peerName(3) }),
      /^the attestation of p003 is not from the set$/,
    ],
    [
      "a self seed that does not match its commitment",
      (r) => r.selfSeeds[1].seed = flipped(r.selfSeeds[1].seed),
      /^the self seed of p001 does not match its commitment$/,
    ],
    [
      "a self seed missing",
      (r) => r.selfSeeds.pop(),
      /^the self seeds are not one per member of the set$/,
    ],
    [
      "a dropped peer's mask secret that does not match its mask key",
      (r) => r.maskSecrets[0].secret = flipped(r.maskSecrets[0].secret),
      /^the mask secret of p003 does not match its mask key$/,
    ],
    [
      "a dropped peer's mask secret missing",
      (r) => r.maskSecrets = [],
      /^the mask secrets are not one per holder that dropped out$/,
    ],
  ]);
  const nofn = await nofnRound();
  await expectChanges(nofn, await receiptOf(nofn), [[
    "an n-of-n receipt with a self seed",
    (r) => r.selfSeeds = [{ name: peerName(0), seed: good.selfSeeds[0]!.seed }],
    /^an n-of-n round has no self seeds$/,
  ]]);
});

Deno.test("the second challenge is checked too: an attestation off in it, re-signed by its member, fails", async () => {
  const round = await dropoutRound();
  const good = await receiptOf(round);
  const segments = layoutOf(round).segments.length;
  const copy = structuredClone(good) as Loose;
  const attestation = copy.attestations[0];
  // Challenge 1's first value (challenge 0's values come first, one per segment).
  attestation.values[segments] = (attestation.values[segments] + 1) % P;
  const key = round.pki.peers.find((p) => p.name === attestation.name)!.signingKey;
  const fields = attestFields(copy.session, fromHex(copy.startHash), copy.resultDigest, [
    ...attestation.values,
  ]);
  attestation.signature = toBase64(await sign(key, "attest", fields));
  await rejects(
    await resigned(copy, round.hospital.signingKey),
    round.pki.caPem,
    LINEAR,
    "challenge 1 off by one",
  );
});

Deno.test("a receipt may carry as many attested values as the wire allows (two per segment, up to 16 segments)", async () => {
  const round = await nofnRound();
  const good = await receiptOf(round);
  const withValues = (count: number) => {
    const copy = structuredClone(good) as Loose;
    copy.attestations[0].values = Array.from({ length: count }, () => 0);
    return resigned(copy, round.hospital.signingKey);
  };
  assert.equal(MAX_ATTESTED_VALUES, 2 * MAX_SEGMENTS);
  // A variance with three residues per component has 9 segments, so 18 values: the bound on
  // reading must not refuse them (this one then fails its shape check for a 1-segment round).
  const error = await verifyStarReceipt(await withValues(MAX_ATTESTED_VALUES), round.pki.caPem)
    .then(
      () => undefined,
      (e: Error) => e.message,
    );
  assert.ok(error !== undefined && !/has more than/.test(error), String(error));
  await rejects(
    await withValues(MAX_ATTESTED_VALUES + 1),
    round.pki.caPem,
    /^attestations\[0\]\.values has more than 32 items/,
    "33 values",
  );
});
