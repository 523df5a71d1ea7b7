/**
 * What the sans-I/O protocol core needs from its runtime and gives back: an
 * Outbox to send through, a log, a certificate verifier, and outcomes. The
 * core never touches a socket, clock, timer, file or console; everything it
 * does to the world goes through these.
 *
 * @module
 */

import type { RoundEvidence } from "./evidence.ts";
import type { Layout } from "../query.ts";
import type { Chunk, Message } from "../wire/messages.ts";

/**
 * Where the core's sends go. Calls return at once and must not reorder:
 * the runtime keeps one write queue per connection (messages and chunks to
 * one party leave in the order they were given). After the core sends
 * `abort` or `done` to a party it sends that party nothing more for the
 * round, and the runtime may close the connection once it is written.
 */
export interface Outbox {
  /** Queues `message` to party `to` (a peer core always sends to its hospital). */
  send(to: string, message: Message): void;
  /** Queues a vector chunk frame to party `to`. */
  sendChunk(to: string, chunk: Chunk): void;
}

/** A log line: about the protocol only, never a private value. */
export type Log = (line: string) => void;

/** Which certificate policy a party's certificate must satisfy. */
export type Role = "hospital" | "peer";

/**
 * Checks that `certPem` is a consortium certificate for party `name` under
 * the policy for `role` (chain to the CA, validity, key usage, EKU, CN =
 * `name`) and returns its ECDSA P-256 verify key; rejects otherwise. The
 * runtime binds it to lib/identity.ts / lib/certpolicy.ts.
 */
export type VerifyParty = (certPem: string, name: string, role: Role) => Promise<CryptoKey>;

/** How a round ended for the hospital. */
export type HospitalOutcome =
  | {
    kind: "done";
    /**
     * Σ_{j ∈ set} x_j, segmented by `layout`: each element the sum modulo
     * its segment's modulus (p1, p2 or p3). Decode it with lib/query.ts
     * `decodeResult(query, result, scale, layout)`; the layout makes every
     * total exact.
     */
    result: Float64Array;
    /** The round's vector layout, computed from the terms (query, max, maxRows, participants). */
    layout: Layout;
    /** Whose inputs the result sums, sorted. */
    set: string[];
    /** vectorDigest(result), lowercase hex, as signed in DONE. */
    resultDigest: string;
    /** Every signed statement of the round, for receipts. */
    evidence: RoundEvidence;
    /** The START transcript hash every participant confirmed, hex. */
    startHash: string;
  }
  | { kind: "aborted"; reason: string };

/** How a round ended for a peer. */
export type PeerOutcome =
  | {
    kind: "done";
    /** Whose inputs the hospital's result sums (this peer among them), sorted. */
    set: string[];
    resultDigest: string;
    /** The hospital's signature over ("done", session, startHash, set, resultDigest). */
    signature: Uint8Array;
    startHash: string;
  }
  | { kind: "aborted"; reason: string };
