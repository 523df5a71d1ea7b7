/**
 * Length-prefixed frames: a 4-byte big-endian length, then that many bytes of
 * payload. Pure functions, no I/O; the transport uses them to read exact
 * lengths and to refuse an oversized frame before allocating for it.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** Bytes in a frame header. */
export const FRAME_HEADER_BYTES = 4;

/**
 * The largest payload accepted: one vector chunk (8 header bytes and 64 Ki
 * elements of 8 bytes), sealed (16 more), with room to spare. START, the
 * biggest JSON message, carries about 700 bytes per participant. The limit
 * bounds what a stranger can make a party buffer for one frame.
 */
export const MAX_FRAME_BYTES = 512 * 1024 + 1024;

/** The 4-byte header announcing `payload`, checked against the limits. */
export function frameHeader(payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length > MAX_FRAME_BYTES) {
    throw new ProtocolError(
      `Cannot send frame: payload of ${payload.length} bytes is outside 1..${MAX_FRAME_BYTES}`,
    );
  }
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, payload.length);
  return header;
}

/** Prefixes `payload` with its length. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  frame.set(frameHeader(payload));
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Reads the payload length from a 4-byte header, refusing 0 and oversized lengths. */
export function decodeFrameLength(header: Uint8Array): number {
  if (header.length !== FRAME_HEADER_BYTES) {
    throw new ProtocolError(`Invalid frame header: expected ${FRAME_HEADER_BYTES} bytes`);
  }
  const length = new DataView(header.buffer, header.byteOffset, 4).getUint32(0);
  if (length === 0) throw new ProtocolError("Invalid frame: empty payload");
  if (length > MAX_FRAME_BYTES) {
    throw new ProtocolError(
      `Invalid frame: length ${length} exceeds the limit of ${MAX_FRAME_BYTES} bytes`,
    );
  }
  return length;
}

/**
 * Splits a complete buffer into frame payloads, requiring it to end exactly on
 * a frame boundary. Used by tests and the fuzzer; the transport reads frames
 * one at a time instead.
 */
export function decodeFrames(buffer: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (buffer.length - offset < FRAME_HEADER_BYTES) {
      throw new ProtocolError("Invalid frame: truncated header");
    }
    const length = decodeFrameLength(buffer.subarray(offset, offset + FRAME_HEADER_BYTES));
    offset += FRAME_HEADER_BYTES;
    if (buffer.length - offset < length) {
      throw new ProtocolError("Invalid frame: truncated payload");
    }
    frames.push(buffer.slice(offset, offset + length));
    offset += length;
  }
  return frames;
}
