/**
 * The only file that touches sockets: TLS listeners and connections that
 * send and receive whole protocol messages.
 *
 * Clients use `Deno.connect` + `Deno.startTls` (so Nagle's algorithm can be
 * turned off first). Servers use `node:tls`, for three reasons
 * `Deno.listenTls` cannot meet: its connections cannot turn Nagle off (the
 * server's first write after the TLS 1.3 session tickets then waits ~40 ms
 * for a delayed ACK on every connection), closing one before its TLS
 * handshake finishes does not release the socket (denoland/deno#14547), so
 * idle strangers could pin file descriptors, and it has no handshake
 * timeout of its own.
 *
 * Reads take exactly the bytes a frame announces (a short read is an error),
 * the length is checked against the frame limit before anything is allocated,
 * writes go through one queue so frames never interleave, and `close()` is
 * idempotent. After the handshake, {@linkcode MessageConnection.secure}
 * seals every message with the channel derived in the handshake.
 *
 * @module
 */

import tls from "node:tls";
import type { SealedChannel } from "./channel.ts";
import { ConnectionClosedError, ListenError, ProtocolError } from "./errors.ts";
import { abortable, abortReason } from "./deadline.ts";
import { decodeFrameLength, FRAME_HEADER_BYTES, frameHeader } from "./frame.ts";
import { releaseGarbage } from "./garbage.ts";
import { CHUNK_ELEMENTS, decodeMessage, encodeMessage, type Message } from "./messages.ts";
import { formatHostPort, type HostPort } from "./names.ts";

/** The byte stream under a connection: a Deno TLS client or a node:tls server socket. */
interface ByteStream {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  handshake(): Promise<unknown>;
  close(): void;
  readonly remote: HostPort;
}

/** A TLS client connection from `Deno.startTls`. */
class DenoStream implements ByteStream {
  #conn: Deno.TlsConn;
  readonly remote: HostPort;

  constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = { hostname: addr.hostname, port: addr.port };
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#conn.read(buffer);
  }

  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  handshake(): Promise<unknown> {
    return this.#conn.handshake();
  }

  close(): void {
    this.#conn.close();
  }
}

/** Buffered bytes above which a server socket stops reading until we catch up. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** A node:tls server socket, read through a small bounded queue. */
class NodeSocketStream implements ByteStream {
  #socket: tls.TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly remote: HostPort;

  constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.remote = remoteOf(socket);
    socket.on("data", (data: Uint8Array) => {
      this.#chunks.push(data);
      this.#buffered += data.length;
      if (this.#buffered > HIGH_WATER_BYTES) socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (error: Error) => {
      this.#error = new ConnectionClosedError(`Connection failed: ${error.message}`, {
        cause: error,
      });
      this.#notify();
    });
  }

  #finish(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < buffer.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, buffer.length - n);
      buffer.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered <= HIGH_WATER_BYTES / 2 && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#socket.destroyed) {
        reject(new ConnectionClosedError("Connection is closed"));
        return;
      }
      this.#socket.write(data, (error?: Error | null) => {
        if (error) {
          reject(
            new ConnectionClosedError(`Connection failed: ${error.message}`, { cause: error }),
          );
        } else resolve(data.length);
      });
    });
  }

  handshake(): Promise<unknown> {
    // node:tls hands over a socket only once its handshake is complete.
    return Promise.resolve();
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A connection carrying length-prefixed protocol messages. */
export class MessageConnection {
  #conn: ByteStream;
  #closed = false;
  #writes: Promise<void> = Promise.resolve();
  #channel: SealedChannel | undefined;
  /** Frame bytes written and read (TLS adds its own few bytes per record). */
  bytesSent = 0;
  bytesReceived = 0;
  /** The remote address, for logs. */
  readonly remote: string;

  constructor(conn: ByteStream) {
    this.#conn = conn;
    this.remote = formatHostPort(conn.remote);
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
      const message = decodeMessage(this.#channel ? await this.#channel.open(payload) : payload);
      // The frame, its plaintext and (for a chunk) the decoded copy.
      releaseGarbage(payload.length * 3);
      return message;
    });
  }

  /** Encodes and sends one message; resolves once it is handed to TLS. */
  send(message: Message, signal: AbortSignal): Promise<void> {
    const payload = encodeMessage(message);
    // Capture the channel now: the queue must seal messages in send order.
    const channel = this.#channel;
    const write = this.#writes.then(() =>
      this.#guard(signal, async () => {
        const body = channel ? await channel.seal(payload) : payload;
        // Header and body as two writes: copying a 512 KiB chunk just to
        // prefix 4 bytes would double the garbage of a vector transfer.
        for (const part of [frameHeader(body), body]) {
          let offset = 0;
          while (offset < part.length) offset += await this.#conn.write(part.subarray(offset));
        }
        this.bytesSent += FRAME_HEADER_BYTES + body.length;
        releaseGarbage(payload.length + body.length);
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

/** Options for {@linkcode listenTls}. */
export interface ListenOptions {
  /** How long a stranger may take to finish the TLS handshake. */
  handshakeTimeoutMs: number;
  /** Told about connections that failed before TLS was established. */
  onRefused?: (remote: string, reason: string) => void;
}

/** A TLS listener that yields {@linkcode MessageConnection}s. */
export class MessageListener {
  #server: tls.Server;
  #closed = false;
  #ready: MessageConnection[] = [];
  #wake: (() => void) | undefined;
  /** The address actually bound. */
  readonly address: HostPort;

  constructor(server: tls.Server, address: HostPort) {
    this.#server = server;
    this.address = address;
    // Accept errors (say, out of file descriptors) affect one connection;
    // without a listener node would treat them as fatal.
    server.on("error", () => {});
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      if (this.#closed) {
        socket.destroy();
        return;
      }
      this.#ready.push(new MessageConnection(new NodeSocketStream(socket)));
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Yields connections whose TLS handshake succeeded, until the listener is closed. */
  async *accept(): AsyncGenerator<MessageConnection> {
    for (;;) {
      const next = this.#ready.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /**
   * Runs `handler` on every accepted connection, concurrently, until the
   * listener is closed; resolves once every handler has finished.
   */
  async serve(handler: (conn: MessageConnection) => Promise<void>): Promise<void> {
    const serving = new Set<Promise<void>>();
    for await (const conn of this.accept()) {
      const task = handler(conn).catch(() => {}).finally(() => serving.delete(task));
      serving.add(task);
    }
    await Promise.allSettled(serving);
  }

  /** Stops listening; safe to call more than once. Connections already handed out stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const conn of this.#ready.splice(0)) conn.close();
    this.#notify();
  }
}

/**
 * A socket's remote address. A TLS socket that failed its handshake may no
 * longer know it; the TCP socket under it (node's `_parent`) still does.
 */
function remoteOf(socket: tls.TLSSocket): HostPort {
  const parent =
    (socket as unknown as { _parent?: { remoteAddress?: string; remotePort?: number } })
      ._parent;
  return {
    hostname: socket.remoteAddress ?? parent?.remoteAddress ?? "unknown",
    port: socket.remotePort ?? parent?.remotePort ?? 0,
  };
}

/** What the system errors a listen can meet mean, in words a user acts on. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "the address is not one of this machine's",
  // Linux says EADDRNOTAVAIL for an address that is not this machine's;
  // some kernels (gVisor among them) say EINVAL.
  EINVAL: "the address cannot be used on this machine (is it one of its own?)",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EAFNOSUPPORT: "this machine does not support that address family",
  ENOTFOUND: "unknown host name",
  EAI_NONAME: "unknown host name",
  EAI_AGAIN: "cannot resolve the host name (no answer from DNS)",
  EAI_FAIL: "cannot resolve the host name",
};

/**
 * A failed listen as one sentence: a busy port or an address that is not
 * this machine's is the user's to fix, not a bug, so it is not reported with
 * a stack. An unrecognised code keeps the system's own message.
 */
function listenError(address: HostPort, error: Error): ListenError {
  const code = (error as { code?: unknown }).code;
  const meaning = typeof code === "string" && Object.hasOwn(LISTEN_FAILURES, code)
    ? LISTEN_FAILURES[code]!
    : error.message;
  return new ListenError(`Cannot listen on ${formatHostPort(address)}: ${meaning}`, {
    cause: error,
  });
}

/**
 * Listens for TLS connections on `address` with this party's certificate.
 * Throws {@linkcode ListenError} when the address cannot be bound.
 */
export async function listenTls(
  address: HostPort,
  certPem: string,
  keyPem: string,
  options: ListenOptions,
): Promise<MessageListener> {
  const server = tls.createServer({
    cert: certPem,
    key: keyPem,
    minVersion: "TLSv1.2",
    handshakeTimeout: options.handshakeTimeoutMs,
  });
  server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
    const remote = formatHostPort(remoteOf(socket));
    options.onRefused?.(remote, `TLS handshake failed: ${error.message}`);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(listenError(address, error));
    server.once("error", onError);
    server.listen(address.port, address.hostname, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new Error("Listener has no TCP address");
  return new MessageListener(server, { hostname: bound.address, port: bound.port });
}

/**
 * Connects over TLS, trusting the consortium CA, and completes the TLS
 * handshake (which checks the server's chain and that its certificate names
 * `address.hostname`).
 *
 * The TCP connection is opened first so that Nagle's algorithm can be turned
 * off: the protocol often writes two frames back to back (a header, then a
 * vector chunk), and with Nagle on, the second waits for the peer's delayed
 * ACK, about 40 ms on Linux, every time.
 */
export async function connectTls(
  address: HostPort,
  caPem: string,
  signal: AbortSignal,
): Promise<MessageConnection> {
  const pending = (async () => {
    const tcp = await Deno.connect({ hostname: address.hostname, port: address.port });
    try {
      tcp.setNoDelay(true);
      return await Deno.startTls(tcp, { hostname: address.hostname, caCerts: [caPem] });
    } catch (error) {
      tcp.close();
      throw error;
    }
  })();
  let conn: Deno.TlsConn;
  try {
    conn = await abortable(pending, signal);
  } catch (error) {
    // If the deadline won the race, close the connection when it arrives.
    pending.then((c) => c.close(), () => {});
    throw error;
  }
  const connection = new MessageConnection(new DenoStream(conn));
  try {
    await connection.handshake(signal);
  } catch (error) {
    connection.close();
    throw error;
  }
  return connection;
}
