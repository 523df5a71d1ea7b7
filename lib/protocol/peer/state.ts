/**
 * What every peer phase state shares: the session's context (terms, own
 * keys, the roster and the checks' results so far) and the base class that
 * routes events. The peer never trusts the hospital: every statement it acts
 * on is checked here or in a phase state, and on any doubt it aborts.
 *
 * | event                                          | decision                        |
 * | ---------------------------------------------- | ------------------------------- |
 * | a message for another session                  | ignored, logged                 |
 * | a message type of an earlier phase (late)      | ignored, logged (so a second    |
 * |                                                | START, SHARES or UNMASK is      |
 * |                                                | never answered twice)           |
 * | `abort` from the hospital                      | aborted                         |
 * | a type the phase does not expect, any chunk    | violation by the hospital:      |
 * |                                                | aborted                         |
 * | `disconnected`, `timeout`                      | aborted                         |
 *
 * Aborting sends the hospital `abort` with the reason (never a value).
 *
 * @module
 */

import { escapeControls } from "../../errors.ts";
import { type SessionKeys, sharedSecret } from "../../crypto/agreement.ts";
import type { SharePair } from "../../crypto/seal.ts";
import type { Layout } from "../../query.ts";
import type { Message, MessageType, Participant, Terms } from "../../wire/messages.ts";
import { fitReason } from "../../wire/messages.ts";
import type { Log, Outbox, PeerOutcome, VerifyParty } from "../types.ts";

/** The phases of a peer session, in order. */
export type PeerPhase =
  | "invite"
  | "join"
  | "confirm"
  | "share"
  | "input"
  | "consistency"
  | "unmask"
  | "done"
  | "aborted";

/** Which hospital → peer message types each phase waits for. */
const AWAITS: Record<PeerPhase, readonly MessageType[]> = {
  invite: ["invite"],
  join: ["start"],
  confirm: ["confirmations"],
  share: ["shares"],
  input: ["proceed", "survivors", "done"],
  consistency: ["unmask", "done"],
  unmask: ["done"],
  done: [],
  aborted: [],
};
const ORDER: readonly PeerPhase[] = [
  "invite",
  "join",
  "confirm",
  "share",
  "input",
  "consistency",
  "unmask",
  "done",
  "aborted",
];

/** Everything a peer session is created from. */
export interface PeerOptions {
  /** This peer's party name (its certificate's CN). */
  name: string;
  /** The hospital's expected name: INVITE's certificate must be for it. */
  hospitalName: string;
  /** This peer's ECDSA P-256 private key. */
  signingKey: CryptoKey;
  outbox: Outbox;
  verifyParty: VerifyParty;
  /**
   * Records `session` as seen and returns whether it was new. The runtime
   * keeps the set (on disk); a session seen before is refused.
   */
  claimSession(session: string): boolean | Promise<boolean>;
  /**
   * This peer's input for `terms`, already encoded as field elements by the
   * round's `layout` (lib/query.ts `encodeInput(query, input, {scale,
   * layout})`; the core computed the layout from the signed terms itself).
   * Throwing refuses the round with the error's message, which must name
   * where, never what. The array returned becomes the session's: it is
   * masked in place, so a caller that reads its data afterwards returns a
   * copy.
   */
  input(terms: Terms, layout: Layout): Float64Array | Promise<Float64Array>;
  /** This peer's own minimum number of contributors (default 2). */
  minContributors?: number;
  /** This peer's own lowest acceptable threshold T in threshold rounds (default 2). */
  minThreshold?: number;
  log?: Log;
}

/** A sparse round's view from one peer (docs/protocol.md §18). */
export interface SparseView {
  /** K, the graph's degree. */
  k: number;
  /** n, the size of the whole roster (START `size`). */
  n: number;
  /** This peer's position. */
  position: number;
  /** Its window's positions, q − K/2 … q + K/2 (mod n). */
  window: number[];
  /** The name at each position of the window. */
  names: Map<number, string>;
}

/** The session's shared, growing state. */
export class PeerContext {
  readonly name: string;
  readonly hospitalName: string;
  readonly signingKey: CryptoKey;
  readonly outbox: Outbox;
  readonly verifyParty: VerifyParty;
  readonly claimSession: (session: string) => boolean | Promise<boolean>;
  readonly input: (terms: Terms, layout: Layout) => Float64Array | Promise<Float64Array>;
  readonly minContributors: number;
  readonly minThreshold: number;
  readonly log: Log;

  session = "";
  sessionBytes: Uint8Array = new Uint8Array(0);
  terms: Terms | undefined;
  /** The vector layout this peer computed from the terms (set with them). */
  layout: Layout | undefined;
  hospitalKey: CryptoKey | undefined;
  x: Float64Array = new Float64Array(0);
  /**
   * The masked vector y this peer sent, kept until DONE for its attestation
   * ⟨r, y⟩ (8 bytes per element: 8 MiB for 2^20 elements).
   */
  masked: Float64Array = new Float64Array(0);
  /**
   * PROCEED has come (docs/protocol.md §10.5): ahead of the message that
   * opens the masked-input phase, so the chunks go out right after INPUT,
   * or in that phase, when they go at once. Only one is allowed.
   */
  proceeded = false;
  keys: SessionKeys | undefined;
  roster: Participant[] = [];
  /** Roster index of each participant (sparse: its position); its Shamir point is index + 1. */
  readonly index = new Map<string, number>();
  /** Set in a sparse round once START is accepted: this peer sees only its window. */
  sparse: SparseView | undefined;
  readonly verifyKeys = new Map<string, CryptoKey>();
  readonly sealKeys = new Map<string, CryptoKey>();
  readonly maskKeys = new Map<string, CryptoKey>();
  /**
   * ECDH of this peer's and each other participant's sealing keys (both
   * directions use it), as started: ahead by `prepare`, or when first needed.
   */
  readonly #sealSecrets = new Map<string, Promise<Uint8Array>>();
  startHash: Uint8Array = new Uint8Array(0);
  /** Participants whose confirmation of this START verified, this peer included. */
  confirmed: string[] = [];
  /** Participants whose shares this peer holds (threshold), this peer included. */
  holders: string[] = [];
  /** The shares each holder gave this peer (its own shares under its own name). */
  readonly shares = new Map<string, SharePair>();
  /** The survivors set this peer signed. */
  survivors: string[] = [];
  outcome: PeerOutcome | undefined;

  constructor(options: PeerOptions) {
    this.name = options.name;
    this.hospitalName = options.hospitalName;
    this.signingKey = options.signingKey;
    this.outbox = options.outbox;
    this.verifyParty = options.verifyParty;
    this.claimSession = options.claimSession;
    this.input = options.input;
    this.minContributors = options.minContributors ?? 2;
    this.minThreshold = options.minThreshold ?? 2;
    this.log = options.log ?? (() => {});
  }

  /** The terms (set once INVITE is accepted). */
  get agreed(): Terms {
    if (!this.terms) throw new Error("Cannot read terms: no invite accepted");
    return this.terms;
  }

  /** The layout (set once INVITE is accepted). */
  get agreedLayout(): Layout {
    if (!this.layout) throw new Error("Cannot read the layout: no invite accepted");
    return this.layout;
  }

  /**
   * The fewest participants this peer goes on with in a phase: max(T,
   * floor), or in a sparse round T per window (the floor was checked
   * against the roster's size at START; no peer sees more than its window).
   */
  get phaseFloor(): number {
    const terms = this.agreed;
    return this.sparse ? terms.threshold : Math.max(terms.threshold, this.floor);
  }

  /** The floor on contributors this peer enforces: the stricter of its own and the terms'. */
  get floor(): number {
    return Math.max(this.minContributors, this.agreed.minContributors);
  }

  send(message: Message): void {
    this.outbox.send(this.hospitalName, message);
  }

  /** The ECDH of the sealing keys with `name` (imported at START), derived once. */
  sealSecret(name: string): Promise<Uint8Array> {
    let secret = this.#sealSecrets.get(name);
    if (!secret) {
      const other = this.sealKeys.get(name);
      if (!other || !this.keys) throw new Error(`Cannot seal to ${name}: no sealing key`);
      secret = sharedSecret(this.keys.seal.privateKey, other);
      this.#sealSecrets.set(name, secret);
    }
    return secret;
  }
}

/** One phase of a peer session. */
export abstract class PeerState {
  abstract readonly phase: PeerPhase;
  protected readonly ctx: PeerContext;

  constructor(ctx: PeerContext) {
    this.ctx = ctx;
  }

  /** A decoded message from the hospital. */
  async handle(message: Message): Promise<PeerState> {
    if (this.phase !== "invite" && message.session !== this.ctx.session) {
      this.ctx.log(`ignored ${message.type}: another session`);
      return this;
    }
    if (message.type === "abort") {
      // The hospital's own words, escaped: they reach this site's log and terminal (review 17).
      const reason = escapeControls(message.reason);
      return finishAborted(this.ctx, `the hospital aborted the round: ${reason}`, false);
    }
    if (AWAITS[this.phase].includes(message.type)) return await this.receive(message);
    const ahead = this.phase === "share" ||
      (this.phase === "confirm" && this.ctx.agreed.mode === "nofn");
    if (message.type === "proceed" && ahead) {
      // Ahead of the message after which this peer sends INPUT (n-of-n:
      // CONFIRMATIONS; threshold: SHARES), so that INPUT and chunks leave together.
      if (this.ctx.proceeded) return abortSession(this.ctx, "a second PROCEED");
      this.ctx.proceeded = true;
      return this;
    }
    const earlier = ORDER.slice(0, ORDER.indexOf(this.phase));
    if (earlier.some((phase) => AWAITS[phase].includes(message.type))) {
      this.ctx.log(`ignored late ${message.type}`);
      return this;
    }
    return abortSession(this.ctx, `unexpected ${message.type} in phase ${this.phase}`);
  }

  /** A vector chunk: the hospital never sends one. */
  chunk(): Promise<PeerState> {
    return Promise.resolve(abortSession(this.ctx, "unexpected chunk from the hospital"));
  }

  /** The connection to the hospital closed. */
  disconnected(): Promise<PeerState> {
    return Promise.resolve(
      finishAborted(this.ctx, `lost the connection to the hospital in phase ${this.phase}`, false),
    );
  }

  /** The phase's deadline passed. */
  timeout(): Promise<PeerState> {
    return Promise.resolve(abortSession(this.ctx, `timed out in phase ${this.phase}`));
  }

  /**
   * The runtime has nothing to do: start work this phase will need
   * whatever arrives next, so that it is done when the message comes. It
   * changes no state and sends nothing. By default there is none.
   */
  prepare(): void {}

  /** A message this phase waits for. */
  protected abstract receive(message: Message): Promise<PeerState>;
}

/** The session ended with the hospital's signed result. */
export class PeerDoneState extends PeerState {
  readonly phase: PeerPhase = "done";
  override handle(message: Message): Promise<PeerState> {
    this.ctx.log(`ignored ${message.type}: session is over`);
    return Promise.resolve(this);
  }
  override chunk(): Promise<PeerState> {
    return Promise.resolve(this);
  }
  override disconnected(): Promise<PeerState> {
    return Promise.resolve(this);
  }
  override timeout(): Promise<PeerState> {
    return Promise.resolve(this);
  }
  protected receive(): Promise<PeerState> {
    return Promise.resolve(this);
  }
}

/** The session ended without a result. */
export class PeerAbortedState extends PeerDoneState {
  override readonly phase: PeerPhase = "aborted";
}

function finishAborted(ctx: PeerContext, reason: string, notify: boolean): PeerState {
  if (notify && ctx.session !== "") {
    ctx.send({ type: "abort", session: ctx.session, reason: fitReason(reason) });
  }
  ctx.log(`session aborted: ${reason}`);
  ctx.outcome = { kind: "aborted", reason };
  return new PeerAbortedState(ctx);
}

/** Ends the session without a result and tells the hospital why. */
export function abortSession(ctx: PeerContext, reason: string): PeerState {
  return finishAborted(ctx, reason, true);
}
