/**
 * Frames: a u32 big-endian payload length, then the payload. A pure codec
 * (no I/O, no clock), in the manner of denodrivers/postgres'
 * `connection/packet.ts`; `lib/net/connection.ts` feeds it the bytes a
 * socket delivers.
 *
 * The length is checked against the limit in force the moment its four
 * bytes are in, so a stranger announcing a huge frame is refused before
 * anything is allocated for it. The decoder holds only bytes it was given,
 * and allocates a payload only once all of it has arrived, so no input can
 * make it allocate more than it received or more than the limit.
 *
 * @module
 */

/** Bytes in a frame header. */
export const FRAME_HEADER_BYTES = 4;

/**
 * The largest payload accepted before the other party's first message was
 * accepted: room for JOIN or INVITE (a certificate, two keys, a signature,
 * the terms), and small enough that a party that has not yet proved anything
 * cannot make the other buffer much.
 */
export const PRE_AUTH_FRAME_LIMIT = 16 * 1024;

/**
 * The largest payload accepted afterwards: a vector chunk (1 + 4 + 65,536 × 8
 * = 524,293 bytes) with room to spare, and the protocol's hard maximum.
 */
export const FRAME_LIMIT = 1024 * 1024 + 64;

/** The largest length a u32 header can hold. */
const MAX_U32 = 0xffff_ffff;

/** A frame that breaks the framing rules: empty, over the limit, or cut short. */
export class FrameError extends Error {
  override name = "FrameError";
}

function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_U32) {
    throw new RangeError(`Invalid frame limit ${limit}: expected an integer from 1 to ${MAX_U32}`);
  }
  return limit;
}

/** Throws unless `length` is a payload length a frame may announce under `limit`. */
function checkLength(length: number, limit: number, action: string): void {
  if (length === 0) throw new FrameError(`Cannot ${action}: the payload is empty`);
  if (length > limit) {
    throw new FrameError(
      `Cannot ${action}: a payload of ${length} bytes exceeds the limit of ${limit} bytes`,
    );
  }
}

/**
 * The header announcing a payload of `length` bytes. Throws
 * {@linkcode FrameError} for an empty payload or one over `limit`.
 */
export function encodeFrameHeader(length: number, limit: number = FRAME_LIMIT): Uint8Array {
  checkLimit(limit);
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Invalid payload length ${length}`);
  }
  checkLength(length, limit, "send frame");
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, length);
  return header;
}

/** `payload` with its header in front, in one buffer. */
export function encodeFrame(payload: Uint8Array, limit: number = FRAME_LIMIT): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  frame.set(encodeFrameHeader(payload.length, limit));
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** The largest payload accepted; {@linkcode PRE_AUTH_FRAME_LIMIT} unless given. */
  limit?: number;
}

/** Capacity the decoder starts with and shrinks back to when it is drained. */
const MIN_CAPACITY = 4096;

/**
 * An incremental decoder: {@linkcode push} the bytes as they come, take
 * whole payloads with {@linkcode next}, call {@linkcode end} at end of input.
 *
 * Bytes are copied into one internal buffer, so a caller may reuse what it
 * pushed, and many tiny chunks (a client sending one byte at a time) cost
 * their bytes, not an object each. Parsing is lazy, one frame per `next()`,
 * so what the decoder holds is exactly {@linkcode buffered} bytes of input.
 *
 * After the first {@linkcode FrameError} the decoder stays failed: every
 * later call throws the same error, since nothing after a bad header can be
 * framed.
 */
export class FrameDecoder {
  #limit: number;
  #buffer: Uint8Array<ArrayBuffer> = new Uint8Array(MIN_CAPACITY);
  #start = 0;
  #end = 0;
  /** The announced length of the frame at `#start`, once its header is in and checked. */
  #length: number | undefined;
  #failure: FrameError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.#limit = checkLimit(options.limit ?? PRE_AUTH_FRAME_LIMIT);
  }

  /** The largest payload accepted now. */
  get limit(): number {
    return this.#limit;
  }

  /** Input bytes held: pushed and not yet returned by {@linkcode next}. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Bytes allocated to hold input: at most the larger of 4,096 and twice the
   * most ever held at once (the buffer doubles as it grows), and after
   * {@linkcode compact} at most the larger of 4,096 and twice what is held.
   */
  get capacity(): number {
    return this.#buffer.length;
  }

  /**
   * Gives back the capacity beyond what the bytes held need: the buffer
   * shrinks to the smallest of 4,096, 8,192, 16,384, … bytes that holds them
   * (4,096 when nothing is held), if that is smaller than it is.
   * {@linkcode next} keeps a buffer that fits one whole frame, so that a
   * vector transfer reuses it for every chunk; once the transfer is over,
   * this lets the 1 MiB a chunk frame needed go, instead of it staying for
   * the rest of the round on every connection. Call it where a run of large
   * frames has ended, not between them (the buffer would be made again for
   * the next one).
   */
  compact(): void {
    if (this.#failure) return;
    const held = this.buffered;
    let capacity = MIN_CAPACITY;
    while (capacity < held) capacity *= 2;
    if (capacity >= this.#buffer.length) return;
    const smaller = new Uint8Array(capacity);
    smaller.set(this.#buffer.subarray(this.#start, this.#end));
    this.#buffer = smaller;
    this.#start = 0;
    this.#end = held;
  }

  /** Whether the bytes held so far end exactly on a frame boundary (none held). */
  get atBoundary(): boolean {
    return this.#end === this.#start;
  }

  /**
   * Raises the limit, for after the other party's first message was
   * accepted. Lowering it would make a frame already announced invalid, so
   * that is refused.
   */
  raiseLimit(limit: number): void {
    checkLimit(limit);
    if (limit < this.#limit) {
      throw new RangeError(`Cannot lower the frame limit from ${this.#limit} to ${limit}`);
    }
    this.#limit = limit;
  }

  /**
   * Appends `chunk`. Throws {@linkcode FrameError} as soon as the header of
   * the next frame is complete and announces an empty payload or one over
   * the limit, before any byte of it is kept.
   */
  push(chunk: Uint8Array): void {
    this.#throwIfFailed();
    if (chunk.length === 0) return;
    this.#reserve(chunk.length);
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
    this.#readHeader();
  }

  /** The next whole payload, or `undefined` if its bytes have not all arrived. */
  next(): Uint8Array<ArrayBuffer> | undefined {
    this.#throwIfFailed();
    const length = this.#length;
    if (length === undefined || this.buffered < FRAME_HEADER_BYTES + length) return undefined;
    const from = this.#start + FRAME_HEADER_BYTES;
    const payload = this.#buffer.slice(from, from + length);
    this.#start = from + length;
    this.#length = undefined;
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      // Keep a buffer that fits one frame (a vector transfer reuses it for
      // every chunk), but not what a burst of several left behind.
      if (this.#buffer.length > 2 * (FRAME_HEADER_BYTES + this.#limit)) {
        this.#buffer = new Uint8Array(MIN_CAPACITY);
      }
    }
    try {
      this.#readHeader();
    } catch {
      // The next frame's header is bad: this payload is still good, and the
      // error (now recorded) is thrown by the next call.
    }
    return payload;
  }

  /**
   * Declares the end of input. Throws {@linkcode FrameError} if it ended
   * inside a frame (a short read); the connection tells that apart from a
   * clean end between frames. Frames still held should be taken with
   * {@linkcode next} first.
   */
  end(): void {
    this.#throwIfFailed();
    if (this.atBoundary) return;
    const held = this.buffered;
    const part = this.#length === undefined
      ? `${held} of ${FRAME_HEADER_BYTES} header bytes`
      : `${held - FRAME_HEADER_BYTES} of ${this.#length} payload bytes`;
    this.#failure = new FrameError(`Input ended inside a frame: ${part} arrived`);
    throw this.#failure;
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  /** Checks the header at `#start` once its four bytes are in. */
  #readHeader(): void {
    if (this.#length !== undefined || this.buffered < FRAME_HEADER_BYTES) return;
    const b = this.#buffer;
    const s = this.#start;
    const length = (b[s]! * 0x100_0000) + ((b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!);
    try {
      checkLength(length, this.#limit, "read frame");
    } catch (error) {
      this.#failure = error as FrameError;
      // Nothing after a bad header can be framed: drop what is held.
      this.#buffer = new Uint8Array(0);
      this.#start = this.#end = 0;
      throw error;
    }
    this.#length = length;
  }

  /** Makes room for `extra` more bytes after `#end`. */
  #reserve(extra: number): void {
    const held = this.buffered;
    if (this.#end + extra <= this.#buffer.length) return;
    if (held + extra <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      let capacity = Math.max(this.#buffer.length, MIN_CAPACITY);
      while (capacity < held + extra) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = held;
  }
}
