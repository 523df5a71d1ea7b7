/**
 * The runtime's half of bounded uploads (docs/protocol.md §10.9), for both
 * hospitals (the one-shot lib/runtime/hospital.ts and the service
 * lib/service/hospital.ts). The core decides who is admitted and sends
 * PROCEED; this follows what it sends and what arrives, and sets what only
 * the runtime can: how much a connection may hold unread, when an admitted
 * upload is timed (lib/runtime/upload_watchdog.ts), and when a connection
 * gives back the room its chunk frames took.
 *
 * @module
 */

import { releaseGarbage } from "../garbage.ts";
import type { Connection } from "../net/connection.ts";
import type { HospitalPhase } from "../protocol/hospital/state.ts";
import type { Message } from "../wire/messages.ts";
import { FRAME_HEADER_BYTES, FRAME_LIMIT } from "../wire/frame.ts";
import { chunkCount } from "../wire/messages.ts";
import { uploadsOver, UploadWatchdog } from "./upload_watchdog.ts";

/**
 * Unread bytes a party may have in flight before it is sent PROCEED: two
 * whole frames. Chunks before PROCEED are a violation, and this keeps a
 * party that sends them anyway from making the hospital hold more.
 */
export const UNADMITTED_UNREAD_CAP = 2 * (FRAME_HEADER_BYTES + FRAME_LIMIT);

/** Unread bytes an admitted peer may have in flight: its whole masked input and a few frames more. */
export function unreadCap(dimension: number): number {
  return Math.max(8, chunkCount(dimension) + 4) * (FRAME_HEADER_BYTES + FRAME_LIMIT);
}

/**
 * A party's first message decoded: from now on it may send full frames, but
 * only two may wait unread until it is admitted (the core may be busy with
 * Web Crypto while they arrive).
 */
export function acceptFullFrames(conn: Connection): void {
  conn.raiseLimit();
  conn.setMaxBufferedBytes(UNADMITTED_UNREAD_CAP);
}

/** What an {@linkcode UploadControl} needs. */
export interface UploadControlOptions {
  /** The round's vector length. */
  dimension: number;
  /** The watchdog's window (`stallMs` in upload_watchdog.ts). */
  stallMs: number;
  /** `name`'s connection in this round, if it has one. */
  connection: (name: string) => Connection | undefined;
  /** An admitted upload stopped moving: tell the core. */
  onStall: (name: string) => void;
}

/** The uploads of one round, as the runtime sees them. */
export class UploadControl {
  #dimension: number;
  // Chunks are numbered 0, 1, … ceil(d / 65536) − 1 (docs/protocol.md §9.8).
  #lastChunk: number;
  #connection: (name: string) => Connection | undefined;
  #watchdog: UploadWatchdog;
  #compacted = new Set<string>();

  constructor(options: UploadControlOptions) {
    this.#dimension = options.dimension;
    this.#lastChunk = chunkCount(options.dimension) - 1;
    this.#connection = options.connection;
    this.#watchdog = new UploadWatchdog({
      stallMs: options.stallMs,
      received: (name) => options.connection(name)?.stats.bytesIn ?? 0,
      onStall: options.onStall,
    });
  }

  /** How many admitted uploads are being timed. */
  get watching(): number {
    return this.#watchdog.watching;
  }

  /** The core is sending `message` to `to`. */
  sending(to: string, message: Message): void {
    if (message.type !== "proceed") return;
    this.#watchdog.proceedSent(to);
    // Admitted: now its whole masked input may be in flight.
    this.#connection(to)?.setMaxBufferedBytes(unreadCap(this.#dimension));
  }

  /** `message` from `name` is about to go to the core. */
  receiving(name: string, message: Message): void {
    if (message.type === "input") this.#watchdog.inputReceived(name);
  }

  /** Chunk `index` from `name` is about to go to the core. */
  chunkArriving(name: string, index: number): void {
    if (index === this.#lastChunk) this.#watchdog.complete(name);
  }

  /** The core has handled chunk `index` from `name`, a frame of `frameBytes`. */
  chunkHandled(name: string, index: number, frameBytes: number): void {
    // The frame and its decoded copy are dead now: without a collection they
    // pile up by the megabyte while uploads stream in (see garbage.ts).
    releaseGarbage(2 * frameBytes);
    // The party's masked input is in: the room its connection kept for chunk
    // frames (1 MiB a connection) would otherwise stay until the round ends,
    // a gigabyte at 1,000 peers. Once a round: a party sending "last" chunks
    // over and over must not make the hospital give back and regrow
    // megabytes each time (review 5, R5-2).
    if (index === this.#lastChunk && !this.#compacted.has(name)) {
      this.#compacted.add(name);
      this.#connection(name)?.compact();
    }
  }

  /** `name`'s connection is gone: its upload is not timed any more. */
  lost(name: string): void {
    this.#watchdog.complete(name);
  }

  /** The round is in `phase`: past the masked inputs, nothing is timed. */
  phase(phase: HospitalPhase | "new"): void {
    if (uploadsOver(phase)) this.#watchdog.stop();
  }

  /** Stops every timer, for good; idempotent. */
  stop(): void {
    this.#watchdog.stop();
  }
}
