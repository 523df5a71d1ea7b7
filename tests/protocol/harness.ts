/**
 * An in-memory network for whole rounds of the sans-I/O core: one hospital
 * and N peers, real certificates from createConsortium, every message
 * encoded and strictly decoded on its way (as a frame payload would be), a
 * deterministic scheduler, dropouts, and a tamper hook through which a test
 * plays a malicious hospital or a Dolev–Yao network.
 *
 * Scheduling: the queue is delivered in rounds; in each round every
 * recipient gets its queued events in order, recipients run concurrently
 * (Web Crypto works in parallel), and what each sends is appended to the
 * queue afterwards in recipient-name order — so a run is the same every
 * time. When nothing is queued, the hospital's deadline fires; when the
 * hospital has finished and peers still wait, theirs fire.
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { loadCaCertificate, verifyPartyCertificate } from "../../lib/identity.ts";
import { createConsortium, ECDSA_P256 } from "../../lib/pki.ts";
import {
  type Chunk,
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Message,
  type MessageOf,
  type Terms,
} from "../../lib/wire/messages.ts";
import { encodeInput, type Layout, parseQuery, vectorLayout } from "../../lib/query.ts";
import { HospitalRound } from "../../lib/protocol/hospital/round.ts";
import { startHash } from "../../lib/protocol/transcript.ts";
import { PeerSession } from "../../lib/protocol/peer/session.ts";
import type {
  HospitalOutcome,
  Outbox,
  PeerOutcome,
  VerifyParty,
} from "../../lib/protocol/types.ts";

export const HOSPITAL = "hospital";

/** A party's credentials in memory. */
export interface Party {
  name: string;
  certPem: string;
  signingKey: CryptoKey;
}

/** A consortium for tests: the hospital and peers p000, p001, … */
export interface TestPki {
  hospital: Party;
  peers: Party[];
  verifyParty: VerifyParty;
}

const pkiCache = new Map<number, Promise<TestPki>>();

/** Peer name number i, sorting in number order. */
export function peerName(i: number): string {
  return `p${String(i).padStart(3, "0")}`;
}

async function makePki(count: number): Promise<TestPki> {
  const names = Array.from({ length: count }, (_, i) => peerName(i));
  const consortium = await createConsortium([HOSPITAL, ...names]);
  const ca = await loadCaCertificate(consortium.ca.cert);
  const load = async (name: string): Promise<Party> => {
    const pair = consortium.parties.get(name)!;
    const signingKey = await crypto.subtle.importKey(
      "pkcs8",
      x509.PemConverter.decodeFirst(pair.key),
      ECDSA_P256,
      false,
      ["sign"],
    );
    return { name, certPem: pair.cert, signingKey };
  };
  return {
    hospital: await load(HOSPITAL),
    peers: await Promise.all(names.map(load)),
    // Tests bind the verifier to lib/identity.ts; the runtime adds the role policy.
    verifyParty: async (pem, name) => (await verifyPartyCertificate(pem, ca, name)).publicKey,
  };
}

/** A consortium with at least `count` peers (made once per size and reused). */
export function testPki(count: number): Promise<TestPki> {
  const size = count <= 10
    ? 10
    : count <= 40
    ? 40
    : count <= 100
    ? 100
    : 100 * Math.ceil(count / 100);
  let pki = pkiCache.get(size);
  if (!pki) pkiCache.set(size, pki = makePki(size));
  return pki;
}

/** One event in flight. */
export type NetEvent =
  | { from: string; to: string; message: Message; raw?: boolean }
  | { from: string; to: string; chunk: Chunk; raw?: boolean };

/**
 * A round's terms as a test writes them: `participants` defaults to the
 * number of peers invited, and `dimension` to the layout's for that N.
 */
export type RoundTerms =
  & Omit<Terms, "participants" | "dimension">
  & Partial<Pick<Terms, "participants" | "dimension">>;

/** The full terms of a draft for a round that invites `invited` peers. */
export function completeTerms(draft: RoundTerms, invited: number): Terms {
  const participants = draft.participants ?? invited;
  const dimension = draft.dimension ?? vectorLayout(parseQuery(draft.query, draft.scale), {
    max: draft.max,
    maxRows: draft.maxRows,
    participants,
  }).dimension;
  return { ...draft, participants, dimension };
}

/** Options for one in-memory round. */
export interface RoundOptions {
  peers: number;
  terms: RoundTerms;
  /** Each peer's input, by peer index, for the layout that peer computed from the terms. */
  inputs: (i: number, layout: Layout) => Float64Array;
  /**
   * Sees every event as it is sent, returns what actually goes on the wire
   * (nothing = dropped, several = injected).
   */
  tamper?: (event: NetEvent, net: Net) => NetEvent[] | Promise<NetEvent[]>;
  /** A peer dies when it is about to send a matching event. */
  dies?: { peer: string; when: (event: NetEvent) => boolean; delivered: boolean }[];
  /** Per-peer floors (undefined: the peer's default). */
  minContributors?: (name: string) => number | undefined;
  minThreshold?: (name: string) => number | undefined;
  /** The session id the hospital uses (replay tests). */
  session?: string;
  /** Sessions each peer has seen already (replay tests); shared per peer name. */
  seen?: Map<string, Set<string>>;
  /** Invite only these peer indices (default: all). */
  invite?: number[];
  /** Masked inputs the hospital admits at once (default: its own rule). */
  uploads?: number;
  /**
   * Called when nothing is queued, before the hospital's deadline fires: a
   * test plays the runtime's other clocks here (say, `hospital.stalled`).
   * Returning true means it did something, and the deadline waits.
   */
  onIdle?: (hospital: HospitalRound) => Promise<boolean>;
}

/** What a round left behind. */
export interface RoundResult {
  hospital: HospitalOutcome;
  /** The terms the hospital ran (the draft completed). */
  terms: Terms;
  peers: Map<string, PeerOutcome | undefined>;
  /** Every event that was sent (after tampering), in order. */
  trace: NetEvent[];
  /** Log lines per party. */
  logs: Map<string, string[]>;
  net: Net;
  names: string[];
}

/** The in-memory network of one round. */
export class Net {
  readonly queue: (NetEvent | { disconnect: string })[] = [];
  readonly trace: NetEvent[] = [];
  /** What each party's core emitted, before dropouts and tampering. */
  readonly sent: NetEvent[] = [];
  readonly dead = new Set<string>();
  readonly logs = new Map<string, string[]>();
  #pending = new Map<string, Promise<(NetEvent | { disconnect: string })[]>[]>();
  #options: RoundOptions;

  constructor(options: RoundOptions) {
    this.#options = options;
  }

  /** An Outbox for `from` that buffers until the scheduler appends. */
  outbox(from: string): Outbox {
    const push = (event: NetEvent) => this.#sent(from, event);
    return {
      send: (to, message) => push({ from, to, message: structuredClone(message) }),
      sendChunk: (to, chunk) =>
        push({ from, to, chunk: { index: chunk.index, data: Float64Array.from(chunk.data) } }),
    };
  }

  log(name: string): (line: string) => void {
    if (!this.logs.has(name)) this.logs.set(name, []);
    return (line) => this.logs.get(name)!.push(line);
  }

  /**
   * Kills `name`: it sends nothing more and receives nothing; what it sent
   * before still arrives, then the hospital sees the disconnect.
   */
  kill(name: string): void {
    if (this.dead.has(name)) return;
    this.dead.add(name);
    if (!this.#pending.has(name)) this.#pending.set(name, []);
    this.#pending.get(name)!.push(Promise.resolve([{ disconnect: name }]));
  }

  #sent(from: string, event: NetEvent): void {
    if (this.dead.has(from)) return;
    this.sent.push(event);
    const rule = this.#options.dies?.find((d) => d.peer === from && d.when(event));
    if (rule && !rule.delivered) {
      this.kill(from);
      return;
    }
    const events = this.#options.tamper
      ? Promise.resolve(this.#options.tamper(event, this))
      : Promise.resolve([event]);
    if (!this.#pending.has(from)) this.#pending.set(from, []);
    this.#pending.get(from)!.push(events);
    if (rule) this.kill(from);
  }

  /** Appends what each party sent, in name order (deterministic). */
  async flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = new Map();
    for (const name of [...pending.keys()].sort()) {
      for (const events of pending.get(name)!) {
        for (const event of await events) {
          if (!("disconnect" in event)) this.trace.push(event);
          this.queue.push(event);
        }
      }
    }
  }
}

/**
 * Encodes and strictly decodes, as the frame codec would on a real
 * connection; an event a tamper marked `raw` (one the codec would refuse)
 * reaches the core as it is, to test the core's own checks.
 */
function overTheWire(event: NetEvent): Message | Chunk {
  if (event.raw) return "message" in event ? event.message : event.chunk;
  const payload = "message" in event
    ? encodeMessage(event.message)
    : encodeChunk(event.chunk.index, event.chunk.data);
  const decoded = decodePayload(payload);
  return decoded.kind === "message" ? decoded.message : decoded.chunk;
}

/** Runs one whole round in memory and returns every party's outcome. */
export async function runRound(options: RoundOptions): Promise<RoundResult> {
  const pki = await testPki(options.peers);
  const indices = options.invite ?? Array.from({ length: options.peers }, (_, i) => i);
  const peers = pki.peers.slice(0, options.peers);
  const net = new Net(options);
  const sessions = new Map<string, PeerSession>();
  const seen = options.seen ?? new Map<string, Set<string>>();
  for (const [i, party] of peers.entries()) {
    if (!seen.has(party.name)) seen.set(party.name, new Set());
    const known = seen.get(party.name)!;
    const minContributors = options.minContributors?.(party.name);
    const minThreshold = options.minThreshold?.(party.name);
    sessions.set(
      party.name,
      new PeerSession({
        name: party.name,
        hospitalName: HOSPITAL,
        signingKey: party.signingKey,
        outbox: net.outbox(party.name),
        verifyParty: pki.verifyParty,
        claimSession: (session) => {
          if (known.has(session)) return false;
          known.add(session);
          return true;
        },
        input: (_terms, layout) => options.inputs(i, layout),
        log: net.log(party.name),
        ...(minContributors !== undefined ? { minContributors } : {}),
        ...(minThreshold !== undefined ? { minThreshold } : {}),
      }),
    );
  }
  const terms = completeTerms(options.terms, indices.length);
  const hospital = new HospitalRound({
    name: HOSPITAL,
    certPem: pki.hospital.certPem,
    signingKey: pki.hospital.signingKey,
    terms,
    invitees: indices.map((i) => ({ name: peers[i]!.name, certPem: peers[i]!.certPem })),
    outbox: net.outbox(HOSPITAL),
    verifyParty: pki.verifyParty,
    log: net.log(HOSPITAL),
    ...(options.session ? { session: options.session } : {}),
    ...(options.uploads !== undefined ? { uploads: options.uploads } : {}),
  });
  await hospital.start();
  await net.flush();
  for (let rounds = 0; rounds < 10_000; rounds++) {
    if (net.queue.length === 0) {
      if (!hospital.outcome && await options.onIdle?.(hospital)) {
        await net.flush();
        continue;
      }
      if (!hospital.outcome) {
        await hospital.timeout();
      } else {
        const waiting = [...sessions].filter(([name, s]) => !s.outcome && !net.dead.has(name));
        if (waiting.length === 0) break;
        await Promise.all(waiting.map(([, s]) => s.timeout()));
      }
      await net.flush();
      continue;
    }
    const batch = net.queue.splice(0);
    const byRecipient = new Map<string, typeof batch>();
    for (const event of batch) {
      const to = "disconnect" in event ? HOSPITAL : event.to;
      if (!byRecipient.has(to)) byRecipient.set(to, []);
      byRecipient.get(to)!.push(event);
    }
    await Promise.all([...byRecipient].map(async ([to, events]) => {
      for (const event of events) {
        if ("disconnect" in event) {
          await hospital.disconnected(event.disconnect);
          continue;
        }
        if (net.dead.has(to)) continue;
        const decoded = overTheWire(event);
        if (to === HOSPITAL) {
          if ("data" in decoded) await hospital.chunk(event.from, decoded);
          else await hospital.message(event.from, decoded);
        } else {
          const session = sessions.get(to);
          if (!session) throw new Error(`no peer ${to}`);
          if ("data" in decoded) await session.chunk();
          else await session.message(decoded);
        }
      }
    }));
    await net.flush();
  }
  return {
    hospital: hospital.outcome ?? { kind: "aborted", reason: "(test) no outcome" },
    terms,
    peers: new Map([...sessions].map(([name, s]) => [name, s.outcome])),
    trace: net.trace,
    logs: net.logs,
    net,
    names: peers.map((p) => p.name),
  };
}

/** Terms for a `sum` round (participants and dimension filled in by {@linkcode runRound}). */
export function sumTerms(
  mode: "nofn" | "threshold",
  threshold = 0,
  minContributors = 2,
): RoundTerms {
  return { query: "sum", scale: 0, max: 1_000_000n, maxRows: 1, mode, threshold, minContributors };
}

/** Terms for a sparse `sum` round: threshold T per window of K neighbours (docs/protocol.md §18). */
export function sparseTerms(k: number, t: number, minContributors = 2): RoundTerms {
  return { ...sumTerms("threshold", t, minContributors), neighbors: k };
}

/** A deterministic input for peer i: a distinct small value. */
export function sumInput(i: number): Float64Array {
  return Float64Array.of(1000 + 37 * i);
}

/** The plain sum of the sum inputs of the named peers. */
export function plainSum(names: readonly string[]): number {
  return names.reduce((s, n) => s + sumInput(Number(n.slice(1)))[0]!, 0);
}

/**
 * Terms of a round that needs residues: variance with R = 10^6 and
 * M = 10^4 rows. Over 5 peers Σx² can reach 5 · 10^16 > p1, so it takes 2
 * residues (mod p1, p2); Σx and the count stay on the fast path. The layout
 * for N = 5 is p1 × 2, p2 × 1, p1 × 1: a p2 segment between two p1 ones.
 */
export function residueTerms(
  mode: "nofn" | "threshold",
  threshold = 0,
  minContributors = 2,
): RoundTerms {
  return {
    query: "variance",
    scale: 0,
    max: 1_000_000n,
    maxRows: 10_000,
    mode,
    threshold,
    minContributors,
  };
}

/**
 * Peer i's rows for {@linkcode residueTerms}: 2000 values close to R, so
 * that Σx² over 5 peers (about 10^16) passes p1 and only the residues carry
 * it exactly.
 */
export function residueRows(i: number): Float64Array {
  return Float64Array.from(
    { length: 2000 },
    (_, k) => 1_000_000 - ((k * 7919 + i * 104_729) % 1000),
  );
}

/** Peer i's variance input encoded by `layout` (the layout the peer computed). */
export function residueInput(i: number, layout: Layout): Float64Array {
  const values = residueRows(i);
  return encodeInput(parseQuery("variance", 0), { values, where: (k) => `row ${k + 1}` }, {
    scale: 0,
    layout,
  });
}

/** [Σx, Σx², rows] over the named peers' {@linkcode residueRows}, in BigInt. */
export function residueTotals(names: readonly string[]): bigint[] {
  let [sum, squares, rows] = [0n, 0n, 0n];
  for (const name of names) {
    for (const x of residueRows(Number(name.slice(1)))) {
      sum += BigInt(x);
      squares += BigInt(x) * BigInt(x);
      rows++;
    }
  }
  return [sum, squares, rows];
}

/** Whether `e` is a message of `type` sent by `from`. */
export function isMessageFrom<T extends Message["type"]>(
  e: NetEvent,
  from: string,
  type: T,
): e is NetEvent & { message: MessageOf<T> } {
  return e.from === from && "message" in e && e.message.type === type;
}

/** The events of one type that `from` sent. */
export function sentBy(trace: readonly NetEvent[], from: string, type: string): Message[] {
  return trace.filter((e) => isMessageFrom(e, from, type as Message["type"])).map((e) =>
    (e as NetEvent & { message: Message }).message
  );
}

/**
 * An outcome as text for an assertion message: JSON, with BigInts (a done
 * outcome's layout has them) as decimal strings and vectors shortened.
 */
export function show(value: unknown): string {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Float64Array) return `Float64Array(${v.length})`;
    return v;
  }) ?? String(value);
}

/**
 * A `survivors` message for `set` as a hospital would build it in the round
 * on `net`: the session, the set, and each member's INPUT statement as that
 * member sent it (members that sent none are left out).
 */
export function survivorsMessage(net: { sent: NetEvent[] }, set: readonly string[]): Message {
  const { session } = sentBy(net.sent, HOSPITAL, "invite")[0]!;
  const inputs = set.flatMap((name) =>
    (sentBy(net.sent, name, "input") as MessageOf<"input">[]).slice(0, 1).map((m) => ({
      name,
      digest: m.digest,
      seedCommit: m.seedCommit,
      partners: m.partners,
      signature: m.signature,
    }))
  );
  return { type: "survivors", session, set: [...set], inputs };
}

/** `survivors` narrowed or changed to `set`, its statements kept for the members still in it. */
export function withSet(message: MessageOf<"survivors">, set: readonly string[]): Message {
  return { ...message, set: [...set], inputs: message.inputs.filter((s) => set.includes(s.name)) };
}

/** The START hash of the round on `net`, from the INVITE and START the hospital sent. */
export async function startHashOn(net: { sent: NetEvent[] }): Promise<Uint8Array> {
  const start = sentBy(net.sent, HOSPITAL, "start")[0] as MessageOf<"start">;
  const { terms } = sentBy(net.sent, HOSPITAL, "invite")[0] as MessageOf<"invite">;
  return await startHash(start.session, terms, start.participants);
}
