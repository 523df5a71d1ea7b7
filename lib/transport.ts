/**
 * The only file that touches `Deno.Conn`: TLS listeners and connections that
 * send and receive whole protocol messages.
 *
 * Reads take exactly the bytes a frame announces (a short read is an error),
 * the length is checked against the frame limit before anything is allocated,
 * writes go through one queue so frames never interleave, and `close()` is
 * idempotent. After the handshake, {@linkcode MessageConnection.secure}
 * seals every message with the channel derived in the handshake.
 *
 * @module
 */

import type { SealedChannel } from "./channel.ts";
import { ConnectionClosedError, ProtocolError } from "./errors.ts";
import { abortable, abortReason } from "./deadline.ts";
import { decodeFrameLength, encodeFrame, FRAME_HEADER_BYTES } from "./frame.ts";
import { CHUNK_ELEMENTS, decodeMessage, encodeMessage, type Message } from "./messages.ts";
import { formatHostPort, type HostPort } from "./names.ts";

/** A connection carrying length-prefixed protocol messages. */
export class MessageConnection {
  #conn: Deno.TlsConn;
  #closed = false;
  #writes: Promise<void> = Promise.resolve();
  #channel: SealedChannel | undefined;
  /** Frame bytes written and read (TLS adds its own few bytes per record). */
  bytesSent = 0;
  bytesReceived = 0;
  /** The remote address, for logs. */
  readonly remote: string;

  constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = formatHostPort({ hostname: addr.hostname, port: addr.port });
  }

  /** Whether {@linkcode close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Completes the TLS handshake, or fails when `signal` aborts. */
  async handshake(signal: AbortSignal): Promise<void> {
    await this.#guard(signal, () => this.#conn.handshake());
  }

  /**
   * Seals every later message in both directions with `channel`. Called by
   * each side right after the handshake's last plaintext message.
   */
  secure(channel: SealedChannel): void {
    if (this.#channel) throw new ProtocolError("Connection is already secured");
    this.#channel = channel;
  }

  /** Reads and decodes the next message. */
  async receive(signal: AbortSignal): Promise<Message> {
    return await this.#guard(signal, async () => {
      const header = await this.#readExact(FRAME_HEADER_BYTES, true);
      const payload = await this.#readExact(decodeFrameLength(header), false);
      this.bytesReceived += FRAME_HEADER_BYTES + payload.length;
      return decodeMessage(this.#channel ? await this.#channel.open(payload) : payload);
    });
  }

  /** Encodes and sends one message; resolves once it is handed to TLS. */
  send(message: Message, signal: AbortSignal): Promise<void> {
    const payload = encodeMessage(message);
    // Capture the channel now: the queue must seal messages in send order.
    const channel = this.#channel;
    const write = this.#writes.then(() =>
      this.#guard(signal, async () => {
        const frame = encodeFrame(channel ? await channel.seal(payload) : payload);
        this.bytesSent += frame.length;
        let offset = 0;
        while (offset < frame.length) offset += await this.#conn.write(frame.subarray(offset));
      })
    );
    this.#writes = write.catch(() => {});
    return write;
  }

  /**
   * Sends a vector as chunk frames. At most two chunks are queued at a time,
   * so memory stays bounded however long the vector is.
   */
  async sendVector(
    vector: Float64Array,
    signal: AbortSignal,
    onProgress?: (sent: number) => void,
  ): Promise<void> {
    let pending: Promise<void> | undefined;
    for (let offset = 0; offset < vector.length; offset += CHUNK_ELEMENTS) {
      const data = vector.subarray(offset, Math.min(offset + CHUNK_ELEMENTS, vector.length));
      const write = this.send({ type: "chunk", data }, signal);
      if (pending) await pending;
      pending = write;
      onProgress?.(offset + data.length);
    }
    await pending;
  }

  /** Receives a vector of `length` elements sent with {@linkcode sendVector}. */
  async receiveVector(
    length: number,
    signal: AbortSignal,
    onProgress?: (received: number) => void,
  ): Promise<Float64Array> {
    const vector = new Float64Array(length);
    let filled = 0;
    while (filled < length) {
      const message = await this.receive(signal);
      if (message.type !== "chunk") {
        throw new ProtocolError(`Unexpected ${message.type} message inside a vector`);
      }
      const expected = Math.min(CHUNK_ELEMENTS, length - filled);
      if (message.data.length !== expected) {
        throw new ProtocolError(
          `Invalid chunk: ${message.data.length} elements, expected ${expected}`,
        );
      }
      vector.set(message.data, filled);
      filled += message.data.length;
      onProgress?.(filled);
    }
    return vector;
  }

  /** Closes the connection; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side or the runtime.
    }
  }

  /** Runs `operation`, closing the connection (which ends it) if `signal` aborts. */
  async #guard<T>(signal: AbortSignal, operation: () => Promise<T>): Promise<T> {
    if (signal.aborted) {
      this.close();
      throw abortReason(signal);
    }
    if (this.#closed) throw new ProtocolError("Connection is closed");
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await abortable(operation(), signal);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #readExact(length: number, atBoundary: boolean): Promise<Uint8Array> {
    const buffer = new Uint8Array(length);
    let offset = 0;
    while (offset < length) {
      const n = await this.#conn.read(buffer.subarray(offset));
      if (n === null) {
        // A crash can cut a frame short too: either way the other side is
        // gone, which is not the same as it breaking the protocol.
        throw new ConnectionClosedError(
          offset === 0 && atBoundary
            ? "Connection closed by the other side"
            : "Connection closed mid-frame",
        );
      }
      offset += n;
    }
    return buffer;
  }
}

/** A TLS listener that yields {@linkcode MessageConnection}s. */
export class MessageListener {
  #listener: Deno.TlsListener;
  #closed = false;
  /** The address actually bound. */
  readonly address: HostPort;

  constructor(listener: Deno.TlsListener) {
    this.#listener = listener;
    const addr = listener.addr as Deno.NetAddr;
    this.address = { hostname: addr.hostname, port: addr.port };
  }

  /** Accepts connections until the listener is closed. */
  async *accept(): AsyncGenerator<MessageConnection> {
    while (!this.#closed) {
      let conn: Deno.TlsConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed) return;
        // A failed accept (for example a reset during TCP setup) affects
        // only that one connection; keep serving the others.
        if (error instanceof Deno.errors.BadResource) return;
        continue;
      }
      yield new MessageConnection(conn);
    }
  }

  /** Stops listening; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }
}

/** Listens for TLS connections on `address` with this party's certificate. */
export function listenTls(address: HostPort, certPem: string, keyPem: string): MessageListener {
  return new MessageListener(
    Deno.listenTls({ hostname: address.hostname, port: address.port, cert: certPem, key: keyPem }),
  );
}

/**
 * Connects over TLS, trusting only the consortium CA, and completes the TLS
 * handshake (which checks the server's chain and that its certificate names
 * `address.hostname`).
 */
export async function connectTls(
  address: HostPort,
  caPem: string,
  signal: AbortSignal,
): Promise<MessageConnection> {
  const pending = Deno.connectTls({
    hostname: address.hostname,
    port: address.port,
    caCerts: [caPem],
  });
  let conn: Deno.TlsConn;
  try {
    conn = await abortable(pending, signal);
  } catch (error) {
    // If the deadline won the race, close the connection when it arrives.
    pending.then((c) => c.close(), () => {});
    throw error;
  }
  const connection = new MessageConnection(conn);
  try {
    await connection.handshake(signal);
  } catch (error) {
    connection.close();
    throw error;
  }
  return connection;
}
