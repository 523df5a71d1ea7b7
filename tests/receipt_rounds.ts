/**
 * Whole v2 rounds of the sans-I/O core in memory, for receipt tests: a real
 * consortium (whose CA the verifier needs, which tests/protocol/harness.ts
 * does not hand out), every message encoded and strictly decoded on its
 * way, one event at a time in a fixed order, and the round's evidence
 * assembled from what the hospital sent and received.
 *
 * The receipt is made from the evidence the hospital core reports in its
 * outcome; {@linkcode evidenceOf} also rebuilds it from the messages that
 * went over the wire (INVITE, START and DONE as the hospital sent them,
 * CONFIRM, INPUT and CONSISTENCY as it received them), so a test can check
 * that the core reports exactly the statements the parties signed.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { createConsortium, ECDSA_P256 } from "../lib/pki.ts";
import { loadCaCertificate, verifyPartyCertificate } from "../lib/identity.ts";
import { fromHex } from "../lib/crypto/bytes.ts";
import { combineSecret } from "../lib/crypto/secret_sharing.ts";
import { HospitalRound } from "../lib/protocol/hospital/round.ts";
import { PeerSession } from "../lib/protocol/peer/session.ts";
import type { RoundEvidence } from "../lib/protocol/evidence.ts";
import type { HospitalOutcome, Outbox, VerifyParty } from "../lib/protocol/types.ts";
import { type Layout, parseQuery, vectorLayout } from "../lib/query.ts";
import {
  type Chunk,
  CHUNK_ELEMENTS,
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Message,
  type MessageOf,
  type Terms,
} from "../lib/wire/messages.ts";

export const HOSPITAL = "hospital";

/** A party's credentials in memory. */
export interface Party {
  name: string;
  certPem: string;
  signingKey: CryptoKey;
}

/** A consortium for receipt tests. */
export interface ReceiptPki {
  caPem: string;
  hospital: Party;
  /** The hospital's name with a certificate for a peer's use only (clientAuth). */
  hospitalAsPeer: Party;
  /** Peers p000, p001, … (serverAuth and clientAuth, as `sumshare certs` issues). */
  peers: Party[];
  /** Peer p001's name with a certificate for the hospital's use only (serverAuth). */
  peerAsHospital: Party;
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(pem),
    ECDSA_P256,
    false,
    ["sign"],
  );
}

/** Issues `name` a certificate from the CA with only the extended key usage `eku`. */
async function issueWithEku(
  caCertPem: string,
  caKeyPem: string,
  name: string,
  eku: string,
): Promise<Party> {
  const ca = new x509.X509Certificate(caCertPem);
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01" +
      Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"))
        .join(""),
    subject: `CN=${name}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 300_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: ECDSA_P256,
    publicKey: keys.publicKey,
    signingKey: await importSigningKey(caKeyPem),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([eku]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  return { name, certPem: cert.toString("pem") + "\n", signingKey: keys.privateKey };
}

let cached: Promise<ReceiptPki> | undefined;

/** The receipt tests' consortium: the hospital and peers p000 … p004 (made once). */
export function receiptPki(): Promise<ReceiptPki> {
  cached ??= (async () => {
    const names = Array.from({ length: 5 }, (_, i) => peerName(i));
    const consortium = await createConsortium([HOSPITAL, ...names]);
    const load = async (name: string): Promise<Party> => {
      const pair = consortium.parties.get(name)!;
      return { name, certPem: pair.cert, signingKey: await importSigningKey(pair.key) };
    };
    const { cert, key } = consortium.ca;
    return {
      caPem: cert,
      hospital: await load(HOSPITAL),
      peers: await Promise.all(names.map(load)),
      hospitalAsPeer: await issueWithEku(cert, key, HOSPITAL, x509.ExtendedKeyUsage.clientAuth),
      peerAsHospital: await issueWithEku(
        cert,
        key,
        peerName(1),
        x509.ExtendedKeyUsage.serverAuth,
      ),
    };
  })();
  return cached;
}

/** Peer name number i. */
export function peerName(i: number): string {
  return `p${String(i).padStart(3, "0")}`;
}

/** Options for one in-memory round. */
export interface ReceiptRoundOptions {
  peers: number;
  /** The terms without N and the dimension, which are filled in (N = peers). */
  terms: Omit<Terms, "participants" | "dimension">;
  /** Peer i's input, encoded for the layout the peer computed. */
  inputs: (i: number, layout: Layout) => Float64Array;
  /** A peer that dies right after its last chunk left (it stays in the set). */
  diesAfterInput?: string;
  /** A peer that leaves right after DONE, before its attestation goes out. */
  diesAfterDone?: string;
  /** A peer that dies instead of sending its masked input (threshold: it leaves the set). */
  diesBeforeInput?: string;
  /**
   * Certificates that only the role policy refuses; the core's certificate
   * check here is chain and name only, so the round completes with them.
   */
  hospitalAsPeer?: boolean;
  peerAsHospital?: boolean;
}

type Delivery =
  | { from: string; to: string; message: Message }
  | { from: string; to: string; chunk: Chunk };
type Event = Delivery | { disconnect: string };

/** What a round left: the hospital's outcome, the evidence, and the keys to re-sign with. */
export interface ReceiptRound {
  outcome: Extract<HospitalOutcome, { kind: "done" }>;
  /** The evidence the hospital core reported. */
  evidence: RoundEvidence;
  /** The same evidence, rebuilt from the messages on the wire. */
  recorded: RoundEvidence;
  terms: Terms;
  pki: ReceiptPki;
  /** The hospital's credentials as the round used them. */
  hospital: Party;
  /** Each complete masked vector the hospital received, by sender. */
  masked: Map<string, Float64Array>;
}

/** Encodes and strictly decodes, as a real connection's frame codec would. */
function overTheWire(event: Delivery): Message | Chunk {
  const payload = "message" in event
    ? encodeMessage(event.message)
    : encodeChunk(event.chunk.index, event.chunk.data);
  const decoded = decodePayload(payload);
  return decoded.kind === "message" ? decoded.message : decoded.chunk;
}

/** Runs one round to the end; throws unless the hospital finished with a result. */
export async function runReceiptRound(options: ReceiptRoundOptions): Promise<ReceiptRound> {
  const pki = await receiptPki();
  const hospitalParty = options.hospitalAsPeer ? pki.hospitalAsPeer : pki.hospital;
  const peers = pki.peers.slice(0, options.peers).map((p) =>
    options.peerAsHospital && p.name === pki.peerAsHospital.name ? pki.peerAsHospital : p
  );
  const ca = await loadCaCertificate(pki.caPem);
  // Chain and name only (the runtime adds the role policy): so a round can
  // complete with a certificate only the receipt's policy check refuses.
  const verifyParty: VerifyParty = async (pem, name) =>
    (await verifyPartyCertificate(pem, ca, name, { use: "peer" }).catch(() =>
      verifyPartyCertificate(pem, ca, name, { use: "hospital" })
    )).publicKey;
  const queue: Event[] = [];
  const dead = new Set<string>();
  const received: { from: string; message: Message }[] = [];
  const sent: { to: string; message: Message }[] = [];
  const masked = new Map<string, Float64Array>();
  const outbox = (from: string): Outbox => ({
    send(to, message) {
      if (dead.has(from)) return;
      if (from === options.diesAfterDone && message.type === "attest") {
        dead.add(from);
        queue.push({ disconnect: from });
        return;
      }
      if (from === options.diesBeforeInput && message.type === "input") {
        dead.add(from);
        queue.push({ disconnect: from });
        return;
      }
      queue.push({ from, to, message: structuredClone(message) });
    },
    sendChunk(to, chunk) {
      if (dead.has(from)) return;
      queue.push({ from, to, chunk: { index: chunk.index, data: Float64Array.from(chunk.data) } });
      const last = (chunk.index + 1) * CHUNK_ELEMENTS >= terms.dimension;
      if (from === options.diesAfterInput && last) {
        dead.add(from);
        queue.push({ disconnect: from });
      }
    },
  });
  const draft = options.terms;
  const participants = options.peers;
  const terms: Terms = {
    ...draft,
    participants,
    dimension: vectorLayout(parseQuery(draft.query, draft.scale), {
      max: draft.max,
      maxRows: draft.maxRows,
      participants,
    }).dimension,
  };
  const sessions = new Map<string, PeerSession>();
  peers.forEach((party, i) => {
    sessions.set(
      party.name,
      new PeerSession({
        name: party.name,
        hospitalName: HOSPITAL,
        signingKey: party.signingKey,
        outbox: outbox(party.name),
        verifyParty,
        claimSession: () => true,
        input: (_terms, layout) => options.inputs(i, layout),
      }),
    );
  });
  const hospital = new HospitalRound({
    name: HOSPITAL,
    certPem: hospitalParty.certPem,
    signingKey: hospitalParty.signingKey,
    terms,
    invitees: peers.map((p) => ({ name: p.name, certPem: p.certPem })),
    outbox: outbox(HOSPITAL),
    verifyParty,
  });
  await hospital.start();
  for (let steps = 0; steps < 100_000; steps++) {
    const event = queue.shift();
    if (event === undefined) {
      if (!hospital.outcome) {
        await hospital.timeout();
        continue;
      }
      const waiting = [...sessions].filter(([name, s]) => !s.outcome && !dead.has(name));
      if (waiting.length === 0) break;
      for (const [, s] of waiting) await s.timeout();
      continue;
    }
    if ("disconnect" in event) {
      await hospital.disconnected(event.disconnect);
      continue;
    }
    if (dead.has(event.to)) continue;
    const decoded = overTheWire(event);
    if (event.to === HOSPITAL) {
      if ("data" in decoded) {
        if (!masked.has(event.from)) masked.set(event.from, new Float64Array(terms.dimension));
        masked.get(event.from)!.set(decoded.data, decoded.index * CHUNK_ELEMENTS);
        await hospital.chunk(event.from, decoded);
      } else {
        received.push({ from: event.from, message: decoded });
        await hospital.message(event.from, decoded);
      }
    } else {
      if (event.from === HOSPITAL && !("data" in decoded)) {
        sent.push({ to: event.to, message: decoded });
      }
      const session = sessions.get(event.to)!;
      if ("data" in decoded) await session.chunk();
      else await session.message(decoded);
    }
  }
  const outcome = hospital.outcome;
  if (outcome?.kind !== "done") {
    throw new Error(`the round did not finish: ${JSON.stringify(outcome)}`);
  }
  return {
    outcome,
    evidence: outcome.evidence,
    recorded: evidenceOf(outcome, sent, received),
    terms,
    pki,
    hospital: hospitalParty,
    masked,
  };
}

function first<T extends Message["type"]>(
  sent: readonly { message: Message }[],
  type: T,
): MessageOf<T> {
  const found = sent.find((s) => s.message.type === type);
  if (!found) throw new Error(`the hospital sent no ${type}`);
  return found.message as unknown as MessageOf<T>;
}

function byName<T extends { name: string }>(list: T[]): T[] {
  return list.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * The evidence of a completed round, from what the hospital sent and
 * received. This is what the hospital core should expose itself (the
 * statements it verified, as it verified them).
 */
export function evidenceOf(
  outcome: Extract<HospitalOutcome, { kind: "done" }>,
  sent: readonly { to: string; message: Message }[],
  received: readonly { from: string; message: Message }[],
): RoundEvidence {
  const invite = first(sent, "invite");
  const start = first(sent, "start");
  const done = first(sent, "done");
  const from = <T extends Message["type"]>(type: T) =>
    received.filter((r) => r.message.type === type) as unknown as {
      from: string;
      message: MessageOf<T>;
    }[];
  const set = outcome.set;
  return {
    session: invite.session,
    terms: invite.terms,
    hospital: { name: HOSPITAL, cert: invite.hospitalCert },
    inviteSignature: invite.signature,
    roster: start.participants,
    startHash: fromHex(outcome.startHash),
    confirmations: byName(
      from("confirm").map((r) => ({ name: r.from, signature: r.message.signature })),
    ),
    inputs: byName(
      from("input").filter((r) => set.includes(r.from)).map((r) => ({
        name: r.from,
        length: r.message.length,
        digest: r.message.digest,
        seedCommit: r.message.seedCommit,
        partners: r.message.partners,
        signature: r.message.signature,
      })),
    ),
    set,
    consistency: byName(
      from("consistency").filter((r) => set.includes(r.from)).map((r) => ({
        name: r.from,
        signature: r.message.signature,
      })),
    ),
    resultDigest: done.resultDigest,
    doneSignature: done.signature,
    attestations: byName(
      from("attest").filter((r) => set.includes(r.from)).map((r) => ({
        name: r.from,
        values: r.message.values,
        signature: r.message.signature,
      })),
    ),
    ...rebuiltFrom(from("reveal"), start.participants.map((p) => p.name), set, invite.terms),
  };
}

/** The secrets the revealed shares rebuild: self seeds of the set, mask scalars of the rest. */
function rebuiltFrom(
  reveals: readonly { from: string; message: MessageOf<"reveal"> }[],
  roster: readonly string[],
  set: readonly string[],
  terms: Terms,
): Pick<RoundEvidence, "selfSeeds" | "maskSecrets"> {
  const owners = reveals[0]?.message.shares.map((s) => s.of) ?? [];
  const rebuilt = owners.map((name) => ({
    name,
    secret: combineSecret(
      reveals.map((r) => ({
        x: roster.indexOf(r.from) + 1,
        words: r.message.shares.find((s) => s.of === name)!.share,
      })),
      terms.threshold,
    ),
  }));
  return {
    selfSeeds: rebuilt.filter((r) => set.includes(r.name)),
    maskSecrets: rebuilt.filter((r) => !set.includes(r.name)),
  };
}
