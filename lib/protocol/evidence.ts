/**
 * What a completed round can show a third party: every signed statement the
 * hospital collected, exactly as it verified them. The hospital's core
 * gathers it (lib/protocol/hospital/); receipts (lib/receipt.ts) carry it
 * and `sumshare verify` checks each signature again from the certificates.
 *
 * Each signature is over the fields lib/protocol/transcript.ts defines:
 * INVITE (the hospital's, over session and terms), JOIN (each participant's,
 * over its session keys), CONFIRM (over startHash, which covers the terms and
 * the whole roster), INPUT (over its masked input's length and digest,
 * its commitment to its self seed and its partner set),
 * CONSISTENCY (threshold rounds: over the survivors set), DONE (the
 * hospital's, over the set and the result's digest) and ATTEST (each
 * survivor's, after DONE: ⟨r, y⟩ of its masked vector per segment for the
 * challenge r that DONE fixes). With them go the secrets the hospital
 * rebuilt and checked (threshold rounds): each survivor's self seed and
 * each dropped holder's mask scalar, so a verifier can remove the same
 * masks and recheck the result against the attestations.
 *
 * @module
 */

import type { Participant, Terms } from "../wire/messages.ts";

/** One party's signature on a statement. */
export interface SignedBy {
  name: string;
  /** ECDSA P-256 / SHA-256, IEEE P1363 (64 bytes). */
  signature: Uint8Array;
}

/** A survivor's commitment to its masked input. */
export interface InputCommitment extends SignedBy {
  length: number;
  /** vectorDigest of the masked input, lowercase hex. */
  digest: string;
  /**
   * Its commitment to its self seed (lib/protocol/transcript.ts
   * `seedCommitment`), lowercase hex; all zeros in n-of-n rounds.
   */
  seedCommit: string;
  /** Whom it masked with, itself included: a roster bitmap, lowercase hex (lib/protocol/partners.ts). */
  partners: string;
}

/** A survivor's ATTEST: ⟨r, y⟩ per segment, signed after DONE. */
export interface Attestation extends SignedBy {
  /** One value per segment of the layout, in vector order, each below its segment's modulus. */
  values: number[];
}

/** A secret the hospital rebuilt from revealed shares and checked (32 bytes). */
export interface RebuiltSecret {
  name: string;
  secret: Uint8Array;
}

/** The signed statements of one completed round. */
export interface RoundEvidence {
  session: string;
  terms: Terms;
  /** The hospital's name and certificate (PEM). */
  hospital: { name: string; cert: string };
  /** The hospital's INVITE signature over (session, terms). */
  inviteSignature: Uint8Array;
  /** The START roster, sorted by name, with each JOIN signature. */
  roster: Participant[];
  /** SHA-256 of the START transcript (32 bytes). */
  startHash: Uint8Array;
  /** Every participant's CONFIRM signature the hospital verified. */
  confirmations: SignedBy[];
  /** INPUT commitments of the peers in `set`, sorted by name. */
  inputs: InputCommitment[];
  /** Whose inputs the result sums, sorted. */
  set: string[];
  /** CONSISTENCY signatures on `set` (threshold rounds; empty in n-of-n). */
  consistency: SignedBy[];
  /** vectorDigest of the result, lowercase hex. */
  resultDigest: string;
  /** The hospital's DONE signature over (session, startHash, set, resultDigest). */
  doneSignature: Uint8Array;
  /** ATTEST statements of members of `set` that verified, sorted by name. */
  attestations: Attestation[];
  /**
   * Threshold rounds: each member of `set`'s self seed b, rebuilt and checked
   * against its seedCommit, sorted by name (empty in n-of-n rounds).
   */
  selfSeeds: RebuiltSecret[];
  /**
   * Threshold rounds: each holder outside `set` (shared keys, no complete
   * input)'s mask scalar d, rebuilt and checked against its maskKey, sorted
   * by name.
   */
  maskSecrets: RebuiltSecret[];
}
