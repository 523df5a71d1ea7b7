/**
 * One framed connection over either side's socket: the hospital's node:tls
 * server socket ({@linkcode ./server.ts}) or a peer's `Deno.connectTls`
 * connection ({@linkcode ./client.ts}). Only `lib/net/` touches sockets.
 *
 * - {@linkcode Connection.readFrame} returns exactly the payload a frame
 *   announced. End of input between frames is a clean
 *   {@linkcode ConnectionClosedError}; inside a frame it is a
 *   {@linkcode TransportError} with reason `"truncated"`. Frames that
 *   arrived whole before the other side's input ended (cleanly or not) are
 *   delivered first.
 * - {@linkcode Connection.write} (and `writeBatch`, `writeLazily`) goes
 *   through one queue, so frames never interleave. A write aborted before it
 *   started is not sent; once started, a frame is sent whole or the
 *   connection is closed. A failed write closes the connection.
 *   `writeLazily` makes its payload only when its turn comes, so a long run
 *   of large frames does not wait in the queue all at once.
 * - Until {@linkcode Connection.raiseLimit} (called once the other party's
 *   first message was accepted) frames are at most 16 KiB and at most one
 *   frame may sit unread; afterwards frames are up to 1 MiB + 64 and
 *   `maxBufferedBytes` may sit unread, a cap the runtime can move with
 *   {@linkcode Connection.setMaxBufferedBytes} (say, to the size of the
 *   masked input a party announced). More is an `"overrun"` and closes the
 *   connection. That cap, not pausing the socket, is what bounds memory on
 *   the hospital, because in Deno 2.9.6 a paused node:tls server socket
 *   keeps reading and buffers decrypted bytes out of sight (measured here: a
 *   client writing to a paused socket grew the server by ~250 MB/s), and a
 *   reader that awaits anything per frame (Web Crypto's digest, say) lets a
 *   fast sender get far ahead (measured: 50 MB of a 64 MiB upload unread at
 *   once). The peer's `Deno.connectTls` socket has real backpressure: it is
 *   read only while less than one frame is unread.
 * - Between frames the read buffer keeps room for one whole frame, so that a
 *   run of chunk frames reuses it; {@linkcode Connection.compact} gives that
 *   room back once the run is over.
 * - Every wait takes an `AbortSignal`. An abort ends that wait and leaves
 *   the connection usable; {@linkcode Connection.close} ends everything and
 *   may be called any number of times.
 *
 * @module
 */

import { abortable, abortReason } from "../deadline.ts";
import { ConnectionClosedError } from "../errors.ts";
import {
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FRAME_LIMIT,
  FrameDecoder,
  FrameError,
  PRE_AUTH_FRAME_LIMIT,
} from "../wire/frame.ts";
import { type FailureContext, TransportError, transportError } from "./errors.ts";

/** An empty payload: {@linkcode Connection.writeBatch} hands a link its frames as one "header". */
const EMPTY = new Uint8Array(0);

/** Limits of a {@linkcode Connection}. */
export interface ConnectionOptions {
  /** Largest payload before {@linkcode Connection.raiseLimit}; default 16 KiB. */
  preAuthFrameLimit?: number;
  /** Largest payload afterwards, and the largest this side sends; default 1 MiB + 64. */
  frameLimit?: number;
  /**
   * Unread bytes allowed after {@linkcode Connection.raiseLimit} before the
   * connection is closed as an overrun; default eight full frames (a reader
   * doing nothing else was measured up to four behind a fast sender).
   */
  maxBufferedBytes?: number;
}

/** What a {@linkcode Link} reports to its connection. */
export interface LinkSink {
  data(chunk: Uint8Array): void;
  /** End of input: `undefined` for a clean end, else the socket's error. */
  end(error?: unknown): void;
}

/**
 * A socket as a connection uses it. Implemented in server.ts (node:tls) and
 * client.ts (Deno.connectTls); not for use outside `lib/net/`.
 */
export interface Link {
  /** Starts delivering input to `sink`. Called once. */
  start(sink: LinkSink): void;
  /** Stops reading from the socket, where the socket can (see the module doc). */
  pause(): void;
  resume(): void;
  /** Writes a header and its payload, in order, resolving once both are handed on. */
  write(header: Uint8Array, payload: Uint8Array): Promise<void>;
  /** Ends the connection cleanly (TLS close_notify), releasing it soon even if the other side lingers. */
  close(): void;
}

/** Who is on the other side and how to word failures; set by server.ts and client.ts. */
export interface ConnectionInit extends ConnectionOptions {
  /** The other side's address, `HOST:PORT`. */
  remote: string;
  /** The other side in sentences: "alice", "the hospital at 127.0.0.1:4000". */
  peer: string;
  /** The party name the hospital's certificate policy gave the client (server side only). */
  party?: string;
  /** Called once: when the limit is raised or the connection closes, whichever is first. */
  onAdmitted?: () => void;
  /** A hint added when the other side leaves before sending any frame. */
  earlyCloseHint?: string;
}

/** Counters of a {@linkcode Connection}. */
export interface ConnectionStats {
  /** Bytes received (headers and payloads; TLS adds its own few per record). */
  bytesIn: number;
  /** Bytes handed to the socket (headers and payloads). */
  bytesOut: number;
  framesIn: number;
  framesOut: number;
}

/** A framed connection; see the module documentation. */
export class Connection {
  #link: Link;
  #decoder: FrameDecoder;
  #frameLimit: number;
  #maxBuffered: number;
  #raisedMaxBuffered: number;
  #raised = false;
  /** Set when input ended: `null` cleanly, else the link's error. */
  #inputEnd: unknown = undefined;
  /** Set when the connection failed or was closed here: every later call throws it. */
  #failure: Error | undefined;
  #closed = false;
  #reading = false;
  #wake: (() => void) | undefined;
  #writes: Promise<void> = Promise.resolve();
  #onAdmitted: (() => void) | undefined;
  #earlyCloseHint: string | undefined;
  #stats: ConnectionStats = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0 };
  /** The other side's address, `HOST:PORT`, for logs. */
  readonly remote: string;
  /** The other side in sentences. */
  readonly peer: string;
  /** The party name from the hospital's certificate policy (server side only). */
  readonly party: string | undefined;

  constructor(link: Link, init: ConnectionInit) {
    const preAuth = init.preAuthFrameLimit ?? PRE_AUTH_FRAME_LIMIT;
    this.#frameLimit = init.frameLimit ?? FRAME_LIMIT;
    if (this.#frameLimit < preAuth) {
      throw new RangeError("frameLimit must be at least preAuthFrameLimit");
    }
    this.#link = link;
    this.#decoder = new FrameDecoder({ limit: preAuth });
    // Before the first message is accepted, one frame may sit unread.
    this.#maxBuffered = FRAME_HEADER_BYTES + preAuth;
    this.#raisedMaxBuffered = Math.max(
      init.maxBufferedBytes ?? 8 * (FRAME_HEADER_BYTES + this.#frameLimit),
      FRAME_HEADER_BYTES + this.#frameLimit,
    );
    this.remote = init.remote;
    this.peer = init.peer;
    this.party = init.party;
    this.#onAdmitted = init.onAdmitted;
    this.#earlyCloseHint = init.earlyCloseHint;
    link.start({ data: (chunk) => this.#onData(chunk), end: (error) => this.#onEnd(error) });
  }

  /** Whether {@linkcode close} was called or the connection failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The largest payload accepted now. */
  get limit(): number {
    return this.#decoder.limit;
  }

  /** Bytes received and not yet returned by {@linkcode readFrame}. */
  get buffered(): number {
    return this.#decoder.buffered;
  }

  /** Bytes allocated to hold unread input (see {@linkcode compact}). */
  get capacity(): number {
    return this.#decoder.capacity;
  }

  /**
   * Lets go of read-buffer memory that unread input does not need. The
   * buffer keeps room for one whole frame between frames, so that a vector
   * transfer reuses it for every chunk; call this once such a run of large
   * frames is over (the last chunk of a masked input, a peer's message),
   * never between its frames.
   */
  compact(): void {
    this.#decoder.compact();
  }

  /** A snapshot of the byte and frame counters. */
  get stats(): ConnectionStats {
    return { ...this.#stats };
  }

  /**
   * Raises the frame limit to `frameLimit` and the unread-bytes cap to
   * `maxBufferedBytes`. Call it once the other party's first message was
   * accepted; later calls do nothing.
   */
  raiseLimit(): void {
    if (this.#raised || this.#closed) return;
    this.#raised = true;
    this.#decoder.raiseLimit(this.#frameLimit);
    this.#maxBuffered = this.#raisedMaxBuffered;
    this.#admitted();
  }

  /**
   * Sets how many bytes may sit unread before the connection is closed as an
   * overrun, from now on (at least one whole frame). Only after
   * {@linkcode raiseLimit}: before, the cap is one pre-authentication frame.
   */
  setMaxBufferedBytes(bytes: number): void {
    if (!this.#raised) {
      throw new Error("Cannot set the unread-bytes cap before the limit is raised (a bug)");
    }
    if (!Number.isSafeInteger(bytes) || bytes < FRAME_HEADER_BYTES + this.#frameLimit) {
      throw new RangeError(
        `Invalid maxBufferedBytes ${bytes}: at least one whole frame (${
          FRAME_HEADER_BYTES + this.#frameLimit
        } bytes)`,
      );
    }
    this.#maxBuffered = bytes;
  }

  /**
   * The next frame's payload. Throws {@linkcode ConnectionClosedError} when
   * the other side ended the connection between frames (or this side closed
   * it), {@linkcode TransportError} when it failed or ended inside a frame,
   * {@linkcode FrameError} when the other side broke the framing, and the
   * abort reason when `signal` aborts (the connection stays usable). One
   * read at a time.
   */
  async readFrame(signal: AbortSignal): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#reading) {
      throw new Error("Cannot read a frame: another read on this connection is waiting (a bug)");
    }
    this.#reading = true;
    try {
      for (;;) {
        if (this.#failure) throw this.#failure;
        let payload: Uint8Array<ArrayBuffer> | undefined;
        try {
          payload = this.#decoder.next();
        } catch (error) {
          throw this.#fail(error as FrameError);
        }
        if (payload) {
          this.#stats.framesIn++;
          if (this.#decoder.buffered < this.#highWater()) this.#link.resume();
          return payload;
        }
        if (this.#inputEnd !== undefined) throw this.#endError();
        await this.#nextEvent(signal);
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * Sends `payload` as one frame, after every frame written before it.
   * Resolves once the frame is handed to the socket. If `signal` aborts
   * before the frame's turn, it is not sent; after, it is still sent whole
   * (or the connection closes), and only the wait ends early.
   */
  write(payload: Uint8Array, signal: AbortSignal): Promise<void> {
    let header: Uint8Array;
    try {
      header = encodeFrameHeader(payload.length, this.#frameLimit);
      this.#throwIfUnusable(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(() => [header, payload], 1, signal);
  }

  /**
   * Sends `payloads` as consecutive frames in ONE socket write, after every
   * frame written before them. For small frames that leave back to back
   * (a message and its first chunk): written apart, the second would wait
   * behind the first's delayed ACK wherever Nagle's algorithm cannot be
   * turned off (Deno's TLS client), about 40 ms each time.
   */
  writeBatch(payloads: readonly Uint8Array[], signal: AbortSignal): Promise<void> {
    let frames: Uint8Array;
    try {
      const total = payloads.reduce((n, p) => n + FRAME_HEADER_BYTES + p.length, 0);
      frames = new Uint8Array(total);
      let offset = 0;
      for (const payload of payloads) {
        frames.set(encodeFrameHeader(payload.length, this.#frameLimit), offset);
        frames.set(payload, offset + FRAME_HEADER_BYTES);
        offset += FRAME_HEADER_BYTES + payload.length;
      }
      this.#throwIfUnusable(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(() => [frames, EMPTY], payloads.length, signal);
  }

  /**
   * Sends the payload `encode` returns as one frame, after every frame
   * written before it, calling `encode` only when the frame's turn comes.
   * For a long run of large frames, such as a masked vector's chunks: each
   * passed to {@linkcode write}, their payloads would all be made at once
   * and wait in the queue together, a second copy of the vector (8 MiB at
   * 2^20 elements); this way one payload exists at a time, made once the
   * previous one was handed to the socket. If `signal` aborts before the
   * frame's turn, `encode` is never called; an error from it rejects this
   * write only.
   */
  writeLazily(encode: () => Uint8Array, signal: AbortSignal): Promise<void> {
    try {
      this.#throwIfUnusable(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#enqueue(
      () => {
        const payload = encode();
        return [encodeFrameHeader(payload.length, this.#frameLimit), payload];
      },
      1,
      signal,
    );
  }

  /**
   * Queues the frames `bytes` makes (a head then a tail, together `frames`
   * frames) behind every earlier write; `bytes` is called when their turn comes.
   */
  #enqueue(
    bytes: () => readonly [Uint8Array, Uint8Array],
    frames: number,
    signal: AbortSignal,
  ): Promise<void> {
    const job = this.#writes.then(async () => {
      this.#throwIfUnusable(signal);
      const [head, tail] = bytes();
      try {
        await this.#link.write(head, tail);
      } catch (error) {
        throw this.#fail(this.#mapped(error, `send to ${this.peer}`));
      }
      this.#stats.bytesOut += head.length + tail.length;
      this.#stats.framesOut += frames;
    });
    this.#writes = job.catch(() => {});
    return abortable(job, signal);
  }

  /** Ends the connection; safe to call more than once. A waiting read throws {@linkcode ConnectionClosedError}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure ??= new ConnectionClosedError(
      `Connection to ${this.peer} was closed by this party`,
    );
    this.#link.close();
    this.#admitted();
    this.#notify();
  }

  #onData(chunk: Uint8Array): void {
    if (this.#closed) return;
    this.#stats.bytesIn += chunk.length;
    // Checked before the bytes are copied in, so the cap is never exceeded.
    if (this.#decoder.buffered + chunk.length > this.#maxBuffered) {
      // What fits goes in first, so a frame header announcing more than the limit is reported as
      // that (however the bytes were split into reads), not as the overrun it also is.
      const room = this.#maxBuffered - this.#decoder.buffered;
      try {
        if (room > 0) this.#decoder.push(chunk.subarray(0, room));
      } catch (error) {
        this.#fail(error as FrameError);
        return;
      }
      this.#fail(this.#overrun());
      return;
    }
    try {
      this.#decoder.push(chunk);
    } catch (error) {
      this.#fail(error as FrameError);
      return;
    }
    if (this.#decoder.buffered >= this.#highWater()) this.#link.pause();
    this.#notify();
  }

  #onEnd(error: unknown): void {
    if (this.#closed || this.#inputEnd !== undefined) return;
    this.#inputEnd = error ?? null;
    this.#notify();
  }

  /** The error for a read that found input ended and no whole frame left. */
  #endError(): Error {
    const ended = this.#inputEnd;
    let error: Error;
    if (ended !== null) {
      error = this.#mapped(ended, `read from ${this.peer}`);
    } else if (this.#decoder.atBoundary) {
      const hint = this.#stats.framesIn === 0 && this.#earlyCloseHint
        ? `: ${this.#earlyCloseHint}`
        : "";
      error = new ConnectionClosedError(`${capitalize(this.peer)} closed the connection${hint}`);
    } else {
      let detail = "";
      try {
        this.#decoder.end();
      } catch (cause) {
        detail = ` (${(cause as Error).message.replace(/^Input ended inside a frame: /, "")})`;
      }
      error = new TransportError(
        `Cannot read from ${this.peer}: the connection ended inside a frame${detail} (the other side stopped, or the network cut the connection)`,
        { reason: "truncated" },
      );
    }
    return this.#fail(error);
  }

  #overrun(): TransportError {
    const what = this.#raised
      ? `more than ${this.#maxBuffered} unread bytes (it sends faster than this party reads)`
      : "more than one frame before its first message was accepted";
    return new TransportError(`Cannot read from ${this.peer}: it sent ${what}`, {
      reason: "overrun",
    });
  }

  /** A socket error in words; errors after this side closed are just "closed". */
  #mapped(error: unknown, action: string): Error {
    if (this.#closed && this.#failure) return this.#failure;
    const context: FailureContext = { action, peer: this.peer };
    const mapped = transportError(error, context);
    if (
      mapped instanceof TransportError && this.#stats.framesIn === 0 && this.#earlyCloseHint &&
      (mapped.reason === "reset" || mapped.reason === "broken-pipe")
    ) {
      return new TransportError(`${mapped.message}: ${this.#earlyCloseHint}`, {
        reason: mapped.reason,
        cause: error,
      });
    }
    return mapped;
  }

  /** Records the first failure, closes the socket, and returns the failure to throw. */
  #fail(error: Error): Error {
    if (!this.#failure) {
      this.#failure = error;
      this.#closed = true;
      this.#link.close();
      this.#admitted();
    }
    this.#notify();
    return this.#failure;
  }

  #throwIfUnusable(signal: AbortSignal): void {
    if (this.#failure) throw this.#failure;
    if (signal.aborted) throw abortReason(signal);
  }

  /** Unread bytes at which reading pauses: one whole frame under the limit in force. */
  #highWater(): number {
    return FRAME_HEADER_BYTES + this.#decoder.limit;
  }

  #admitted(): void {
    const callback = this.#onAdmitted;
    this.#onAdmitted = undefined;
    callback?.();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits for input, an end, a failure, or the abort of `signal`. */
  #nextEvent(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#wake = undefined;
        reject(abortReason(signal));
      };
      this.#wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function capitalize(text: string): string {
  // "the hospital at …" starts a sentence capitalised; a party name is kept as it is spelled.
  return text.startsWith("the ") ? "T" + text.slice(1) : text;
}
