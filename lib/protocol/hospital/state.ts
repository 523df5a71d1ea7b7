/**
 * What every hospital phase state shares: the round's context (terms,
 * roster, keys, who has been dropped) and the base class that routes events.
 * Like fcp/secagg's SecAggServerState, each phase is its own class; this base
 * turns the common cases into the same decisions everywhere:
 *
 * | event                                          | decision                          |
 * | ---------------------------------------------- | --------------------------------- |
 * | anything from a dropped party or a non-member  | ignored, logged                   |
 * | a message for another session                  | ignored, logged                   |
 * | a message type of an earlier phase (late)      | ignored, logged                   |
 * | `abort` from a participant; `disconnected`     | that peer is lost (see below)     |
 * | a type the phase does not expect (too early,   | protocol violation by that peer   |
 * |   hospital-bound types only), a stray chunk    |                                   |
 *
 * A lost or violating peer is dropped: in a threshold round it is sent
 * `abort` and the round goes on without it if the phase's floors still hold;
 * in an n-of-n round after START the whole round aborts. Before START
 * (AdvertiseKeys) a lost invitee just is not in the roster.
 *
 * @module
 */

import { randomHex } from "../../encoding.ts";
import type { InputCommitment, RebuiltSecret, SignedBy } from "../evidence.ts";
import type { Chunk, Message, MessageType, Participant, Terms } from "../../wire/messages.ts";
import { fitReason } from "../../wire/messages.ts";
import { type Layout, QueryError } from "../../query.ts";
import { shapeOf } from "../terms.ts";
import { sessionBytes } from "../transcript.ts";
import { window, windowBitmap } from "../graph.ts";
import type { HospitalOutcome, Log, Outbox, VerifyParty } from "../types.ts";

/** The phases of a hospital round, in order. */
export type HospitalPhase =
  | "advertise"
  | "confirm"
  | "share"
  | "input"
  | "consistency"
  | "unmask"
  | "attest"
  | "done"
  | "aborted";

/** Which peer → hospital message types each phase collects. */
const COLLECTS: Record<HospitalPhase, readonly MessageType[]> = {
  advertise: ["join", "refuse"],
  confirm: ["confirm"],
  share: ["sealed"],
  input: ["input"],
  consistency: ["consistency"],
  unmask: ["reveal"],
  attest: ["attest"],
  done: [],
  aborted: [],
};
const ORDER: readonly HospitalPhase[] = [
  "advertise",
  "confirm",
  "share",
  "input",
  "consistency",
  "unmask",
  "attest",
  "done",
  "aborted",
];

/** A peer the hospital invites: its name and certificate, as the TLS handshake showed them. */
export interface Invitee {
  name: string;
  certPem: string;
}

/** Everything a hospital round is created from. */
export interface HospitalOptions {
  /** The hospital's party name (its certificate's CN). */
  name: string;
  /** The hospital's certificate, PEM; sent in INVITE. */
  certPem: string;
  /** The hospital's ECDSA P-256 private key. */
  signingKey: CryptoKey;
  /** The round's terms; `participants` must be at least the number of invitees. */
  terms: Terms;
  /** The connected peers to invite (names unique, at most `terms.participants`). */
  invitees: readonly Invitee[];
  outbox: Outbox;
  verifyParty: VerifyParty;
  log?: Log;
  /** The session id; a fresh random one if absent (tests replay one). */
  session?: string;
  /**
   * How many masked inputs may be on their way at once (each admitted by
   * PROCEED); default {@linkcode uploadSlots} of the round's dimension.
   */
  uploads?: number;
}

/** What the masked inputs admitted at once may hold, together: see {@linkcode uploadSlots}. */
const UPLOAD_BUDGET_BYTES = 64 * 1024 * 1024;

/**
 * Masked inputs admitted at once by default: as many vectors as fit in
 * 64 MiB, and at least two, so that one upload's last frames and the next
 * one's PROCEED overlap. At D = 1 that is every peer of any round (no upload
 * waits); at D = 2^16 (512 KiB a vector), 128; at 2^20, 8. A half-received
 * vector cannot be added to the sum (a sender lost mid-upload could not be
 * taken out again), so without a bound the hospital would hold one per peer.
 * Fewer slots hold less but put uploads in series: the masked-input phase
 * then takes at least ⌈N / U⌉ × (a round trip + one vector over a peer's
 * uplink), so 128 keeps a hospital's link busy with peers on slow uplinks
 * (`sumshare hospital --uploads` sets it).
 */
export function uploadSlots(dimension: number): number {
  return Math.max(2, Math.floor(UPLOAD_BUDGET_BYTES / (8 * dimension)));
}

/** The round's shared, growing state. */
export class HospitalContext {
  readonly name: string;
  readonly certPem: string;
  readonly signingKey: CryptoKey;
  readonly terms: Terms;
  /** The vector layout of the terms: every vector and sum is segmented by it. */
  readonly layout: Layout;
  readonly session: string;
  readonly sessionBytes: Uint8Array;
  readonly invitees: ReadonlyMap<string, string>;
  readonly outbox: Outbox;
  readonly verifyParty: VerifyParty;
  readonly log: Log;
  /** Masked inputs admitted at once (HospitalOptions.uploads). */
  readonly uploads: number;
  /** The START roster, sorted by name (set when START is sent). */
  roster: Participant[] = [];
  /**
   * Roster position of each participant: its Shamir point is index + 1. In
   * a sparse round, its position in the permuted roster (lib/protocol/graph.ts).
   */
  readonly index = new Map<string, number>();
  /** Each participant's START entry, by name. */
  readonly entries = new Map<string, Participant>();
  /** The pairing graph of a sparse round (terms with `neighbors`); undefined: complete. */
  graph: SparseGraph | undefined;
  /** Each participant's certificate verify key. */
  readonly verifyKeys = new Map<string, CryptoKey>();
  startHash: Uint8Array = new Uint8Array(0);
  /** Participants dropped (lost, refused, or violating): ignored from then on. */
  readonly dropped = new Set<string>();
  outcome: HospitalOutcome | undefined;
  /** The signed statements collected so far, for the round's evidence. */
  readonly signed = {
    invite: new Uint8Array(0) as Uint8Array,
    confirmations: [] as SignedBy[],
    inputs: new Map<string, InputCommitment>(),
    consistency: [] as SignedBy[],
    /** Survivors' self seeds, rebuilt and checked against their commitments (threshold). */
    selfSeeds: [] as RebuiltSecret[],
    /** Dropped holders' mask scalars, rebuilt and checked against their mask keys (threshold). */
    maskSecrets: [] as RebuiltSecret[],
  };

  constructor(options: HospitalOptions) {
    this.name = options.name;
    this.certPem = options.certPem;
    this.signingKey = options.signingKey;
    this.terms = options.terms;
    this.session = options.session ?? randomHex(16);
    this.sessionBytes = sessionBytes(this.session);
    this.invitees = new Map(options.invitees.map((i) => [i.name, i.certPem]));
    if (this.invitees.size !== options.invitees.length) {
      throw new RangeError("Cannot create round: an invitee is listed twice");
    }
    const shape = shapeOf(options.terms);
    if (typeof shape === "string") throw new QueryError(`Cannot create round: ${shape}`);
    // The layout covers sums of at most N inputs: more invitees could wrap a total.
    if (this.invitees.size > options.terms.participants) {
      throw new QueryError(
        `Cannot create round: ${this.invitees.size} invitees, more than the terms' ` +
          `${options.terms.participants} participants`,
      );
    }
    this.layout = shape.layout;
    this.uploads = options.uploads ?? uploadSlots(this.layout.dimension);
    if (!Number.isSafeInteger(this.uploads) || this.uploads < 1) {
      throw new RangeError(`Cannot create round: uploads must be a positive integer`);
    }
    this.outbox = options.outbox;
    this.verifyParty = options.verifyParty;
    this.log = options.log ?? (() => {});
  }

  get threshold(): boolean {
    return this.terms.mode === "threshold";
  }

  send(to: string, message: Message): void {
    this.outbox.send(to, message);
  }

  /** Marks `name` dropped and tells it so (it gets nothing more). */
  drop(name: string, reason: string): void {
    if (this.dropped.has(name)) return;
    this.dropped.add(name);
    this.log(`dropped ${name}: ${reason}`);
    this.send(name, { type: "abort", session: this.session, reason: `dropped: ${reason}` });
  }

  /** Whether `name` is still taking part. */
  live(name: string): boolean {
    return !this.dropped.has(name);
  }
}

/** H(n, K) over the permuted roster, as the hospital holds it whole. */
export class SparseGraph {
  readonly k: number;
  /** Names by position. */
  readonly order: readonly string[];
  readonly #position: Map<string, number>;
  readonly #windows = new Map<string, string[]>();
  readonly #sorted = new Map<string, readonly string[]>();

  constructor(order: readonly string[], k: number) {
    this.k = k;
    this.order = order;
    this.#position = new Map(order.map((name, q) => [name, q]));
  }

  position(name: string): number {
    return this.#position.get(name)!;
  }

  /** The window of `name` (itself included), in window order q − K/2 … q + K/2. */
  neighbourhood(name: string): string[] {
    let names = this.#windows.get(name);
    if (!names) {
      names = window(this.position(name), this.order.length, this.k).map((q) => this.order[q]!);
      this.#windows.set(name, names);
    }
    return names;
  }

  /**
   * The window of `name` sorted by name, sorted once: `within` runs a few
   * times per participant and phase, and sorting each time was 200 ms of the
   * hospital's CPU at 1,000 peers.
   */
  sortedNeighbourhood(name: string): readonly string[] {
    let names = this.#sorted.get(name);
    if (!names) {
      names = this.neighbourhood(name).slice().sort();
      this.#sorted.set(name, names);
    }
    return names;
  }

  /** The members of `set` in the window of `name`, sorted by name. */
  within(name: string, set: ReadonlySet<string>): string[] {
    return this.sortedNeighbourhood(name).filter((n) => set.has(n));
  }

  /** A subset of the window of `name` as its window bitmap (lib/protocol/graph.ts). */
  bitmap(name: string, members: ReadonlySet<string>): string {
    const positions = window(this.position(name), this.order.length, this.k);
    // Only the window's K + 1 positions are asked about, so only they are
    // looked up: mapping all of `members` made a round's bitmaps O(N²).
    const inside = new Set(positions.filter((q) => members.has(this.order[q]!)));
    return windowBitmap(positions, inside);
  }
}

/** One phase of a hospital round. */
export abstract class HospitalState {
  abstract readonly phase: HospitalPhase;
  protected readonly ctx: HospitalContext;

  constructor(ctx: HospitalContext) {
    this.ctx = ctx;
  }

  /** Whether `name` may send in this phase at all (a roster member, or an invitee before START). */
  protected member(name: string): boolean {
    return this.ctx.index.has(name);
  }

  /** A decoded message from party `from` (the name TLS authenticated). */
  async handle(from: string, message: Message): Promise<HospitalState> {
    if (!this.member(from) || !this.ctx.live(from)) {
      this.ctx.log(`ignored ${message.type} from ${from}: not taking part`);
      return this;
    }
    if (message.session !== this.ctx.session) {
      this.ctx.log(`ignored ${message.type} from ${from}: another session`);
      return this;
    }
    if (message.type === "abort") return await this.lost(from, "it aborted");
    if (COLLECTS[this.phase].includes(message.type)) return await this.collect(from, message);
    const earlier = ORDER.slice(0, ORDER.indexOf(this.phase));
    if (earlier.some((phase) => COLLECTS[phase].includes(message.type))) {
      this.ctx.log(`ignored late ${message.type} from ${from}`);
      return this;
    }
    return await this.lost(from, `unexpected ${message.type} in phase ${this.phase}`);
  }

  /** A vector chunk from `from`; only the masked-input phase takes them. */
  async chunk(from: string, _chunk: Chunk): Promise<HospitalState> {
    if (!this.member(from) || !this.ctx.live(from)) return this;
    return await this.lost(from, `unexpected chunk in phase ${this.phase}`);
  }

  /** The connection to `name` closed. */
  async disconnected(name: string): Promise<HospitalState> {
    if (!this.member(name) || !this.ctx.live(name)) return this;
    return await this.lost(name, "disconnected");
  }

  /** An admitted upload of `name` stalled; only the masked-input phase has any. */
  stalled(_name: string): Promise<HospitalState> {
    return Promise.resolve(this);
  }

  /** The phase's deadline passed: go on with whoever answered, or abort. */
  abstract timeout(): Promise<HospitalState>;

  /** A message this phase collects, from a live member. */
  protected abstract collect(from: string, message: Message): Promise<HospitalState>;

  /** Whether some live party this phase waits for has not answered yet. */
  protected abstract waiting(): boolean;

  /** Goes on once nobody is awaited. */
  protected async settle(): Promise<HospitalState> {
    return this.waiting() ? this : await this.timeout();
  }

  /**
   * Peer `name` is gone or broke the protocol. n-of-n after START: the round
   * aborts. Otherwise it is dropped and the phase goes on without it.
   */
  protected async lost(name: string, reason: string): Promise<HospitalState> {
    if (!this.ctx.threshold && this.ctx.roster.length > 0) {
      return abortRound(this.ctx, `${name}: ${reason}`);
    }
    this.ctx.drop(name, reason);
    return await this.settle();
  }
}

/** The round ended with a result. */
export class DoneState extends HospitalState {
  readonly phase: HospitalPhase = "done";
  override handle(from: string, message: Message): Promise<HospitalState> {
    this.ctx.log(`ignored ${message.type} from ${from}: round is over`);
    return Promise.resolve(this);
  }
  override chunk(): Promise<HospitalState> {
    return Promise.resolve(this);
  }
  override disconnected(): Promise<HospitalState> {
    return Promise.resolve(this);
  }
  timeout(): Promise<HospitalState> {
    return Promise.resolve(this);
  }
  protected collect(): Promise<HospitalState> {
    return Promise.resolve(this);
  }
  protected waiting(): boolean {
    return false;
  }
}

/** The round ended without a result. */
export class AbortedState extends DoneState {
  override readonly phase: HospitalPhase = "aborted";
}

/**
 * Ends the round without a result: every party still taking part (every
 * invitee before START, every live participant after) is sent `abort`.
 */
export function abortRound(ctx: HospitalContext, reason: string): HospitalState {
  const parties = ctx.roster.length > 0 ? ctx.roster.map((p) => p.name) : [...ctx.invitees.keys()];
  for (const name of parties) {
    if (ctx.live(name)) {
      ctx.send(name, { type: "abort", session: ctx.session, reason: fitReason(reason) });
    }
  }
  ctx.log(`round aborted: ${reason}`);
  ctx.outcome = { kind: "aborted", reason };
  return new AbortedState(ctx);
}
