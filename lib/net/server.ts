/**
 * The hospital's listener: mutual TLS on `node:tls`, yielding
 * {@linkcode Connection}s whose client certificate passed TLS and the
 * injected `authorize` policy.
 *
 * Why `node:tls` and not `Deno.listenTls`: in Deno 2.9.6 `Deno.listenTls`
 * cannot request a client certificate (denoland/deno#26825), cannot turn
 * Nagle off (an 87 ms first round trip), and keeps the descriptor of a
 * connection closed during its handshake until the client leaves. Here the
 * server requests the certificate and verifies its chain against the
 * consortium CA in the handshake (`requestCert`, `rejectUnauthorized`), so a
 * client without one never reaches the frame decoder; it speaks TLS 1.2 and
 * 1.3 only; Nagle is off on every socket.
 *
 * TLS accepts any certificate that chains to the CA, including the CA's own
 * (measured: a client presenting the self-signed CA certificate completes
 * the handshake), so `authorize` must apply the party certificate policy
 * and return the party's name; a refusal closes the socket.
 *
 * Memory a crowd of strangers or slow parties can pin is bounded:
 * - At most `maxHandshakes` TCP connections may be between accept and a
 *   successful `authorize`; one more evicts the oldest (so idle strangers
 *   cannot lock honest clients out), and each is cut `handshakeTimeoutMs`
 *   after it was accepted. Each holds a socket and TLS state, about 45 KiB
 *   measured (500 idle connections: +21 MiB RSS), and no frame bytes: no
 *   application data flows before the handshake.
 * - At most `maxWaiting` authorized connections may be waiting for their
 *   first message to be accepted (until {@linkcode Connection.raiseLimit});
 *   more are turned away. Each holds at most one pre-authentication frame
 *   unread (16 KiB + 4; the decoder's buffer at most twice that), from the
 *   end of the handshake on, while `authorize` is still deciding too; more
 *   closes it as an overrun.
 * - A refused connection leaves nothing behind once collected: Deno 2.9.6's
 *   node:tls would keep each, TLS state and all, until its own 120 s
 *   handshake timer fired, so that timer is turned off (this listener's
 *   timer does the job and is cleared on refusal).
 * So with the defaults (256 and 1,024): at most 256 × ~45 KiB of strangers
 * and 1,024 authorized connections, each with its TLS state (about 130 KiB
 * for an established mutual-TLS connection in Deno 2.9.6's node:tls,
 * docs/performance.md) and at most 32 KiB of frame: about 175 MiB, whatever
 * strangers and waiting parties send. (A stranger's half-sent TLS record
 * adds up to ~18 KiB while it is held.) (tests/net/crowd_test.ts, the
 * hospital in a process of its own: 500 idle strangers and 200 waiting
 * parties each holding half a 16 KiB frame grew it by 51–64 MiB, the
 * runtime's own growth included;
 * tests/outsiders_test.ts: a `sumshare hospital` flooded with 500 idle
 * connections, 100 half-sent TLS records and 60 refused clients peaked
 * 26–31 MiB above its idle RSS, holding at most 256 of them.) An accepted
 * connection holds at most `maxBufferedBytes` unread (connection.ts explains
 * why that is a cap and not a pause).
 *
 * @module
 */

import type net from "node:net";
import tls from "node:tls";
import { abortReason } from "../deadline.ts";
import { ConnectionClosedError } from "../errors.ts";
import { formatHostPort } from "../names.ts";
import { FRAME_HEADER_BYTES, PRE_AUTH_FRAME_LIMIT } from "../wire/frame.ts";
import { Connection, type ConnectionOptions, type Link, type LinkSink } from "./connection.ts";
import { checkCredentials } from "./credentials.ts";
import { TransportError, transportError } from "./errors.ts";

/** Options for {@linkcode listen}. */
export interface ServerOptions {
  /** Address to listen on; port 0 picks a free one (read it back from {@linkcode Server.port}). */
  hostname: string;
  port: number;
  /** The consortium CA certificate, PEM: client certificates must chain to it. */
  ca: string;
  /** The hospital's certificate and private key, PEM. */
  cert: string;
  key: string;
  /**
   * Checks a client certificate that passed TLS (DER) against the party
   * certificate policy and returns the party's name; throws to refuse it.
   */
  authorize: (peerCertificateDer: Uint8Array) => Promise<string>;
  /** Time from TCP accept to a successful `authorize`; default 10 s. */
  handshakeTimeoutMs?: number;
  /** Connections between TCP accept and `authorize`; default 256. */
  maxHandshakes?: number;
  /** Authorized connections whose first message is not yet accepted; default 1,024. */
  maxWaiting?: number;
  /** Frame limits of each connection. */
  connection?: ConnectionOptions;
  /** Told about each connection refused before it was handed out, with the reason in words. */
  onRefused?: (error: TransportError, remote: string) => void;
}

/** A connection between TCP accept and a successful `authorize`. */
interface Pending {
  raw: net.Socket;
  remote: string;
  timer: ReturnType<typeof setTimeout>;
  secure?: tls.TLSSocket;
}

/** Time from TCP accept to a successful `authorize` unless set (docs/protocol.md, Timers). */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** How long a closed socket may take to finish its TLS goodbye before it is cut. */
const CLOSE_GRACE_MS = 2000;

/** Frame data written in one piece with its header when this small (one TLS record). */
const COALESCE_BYTES = 16 * 1024;

/** The TCP socket under a node:tls socket (node's own `_parent`, kept by Deno). */
function parentOf(socket: tls.TLSSocket): net.Socket | undefined {
  return (socket as unknown as { _parent?: net.Socket })._parent;
}

function remoteOf(socket: net.Socket | undefined): string {
  if (!socket?.remoteAddress) return "an unknown address";
  return formatHostPort({ hostname: socket.remoteAddress, port: socket.remotePort ?? 0 });
}

function positiveInteger(value: number | undefined, fallback: number, what: string): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`Invalid ${what} ${n}: expected a positive integer`);
  }
  return n;
}

/**
 * A node:tls server socket as a {@linkcode Link}. It reads from the moment
 * the handshake completes (before `authorize` has answered), holding at most
 * `earlyCap` bytes until the connection takes over: a socket without a
 * `data` listener would, in Deno 2.9.6, buffer whatever arrives out of sight.
 */
class NodeSocketLink implements Link {
  #socket: tls.TLSSocket;
  #sink: LinkSink | undefined;
  #early: Uint8Array[] = [];
  #earlyBytes = 0;
  #earlyCap: number;
  #ended: { error: unknown } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Set when more than `earlyCap` bytes arrived before the connection took over. */
  overrun = false;

  constructor(socket: tls.TLSSocket, earlyCap: number) {
    this.#socket = socket;
    this.#earlyCap = earlyCap;
    socket.on("data", (chunk: Uint8Array) => {
      if (this.#sink) return this.#sink.data(chunk);
      this.#earlyBytes += chunk.length;
      if (this.#earlyBytes > this.#earlyCap) {
        this.overrun = true;
        socket.destroy();
      } else this.#early.push(chunk);
    });
    socket.on("end", () => this.#end(undefined));
    socket.on("error", (error: Error) => this.#end(error));
    socket.on("close", () => {
      clearTimeout(this.#timer);
      this.#end(undefined);
    });
  }

  #end(error: unknown): void {
    if (this.#ended) return;
    this.#ended = { error };
    this.#sink?.end(error);
  }

  start(sink: LinkSink): void {
    this.#sink = sink;
    for (const chunk of this.#early.splice(0)) sink.data(chunk);
    if (this.#ended) sink.end(this.#ended.error);
  }

  // Deliberately nothing: see connection.ts. Pausing a Deno 2.9.6 node:tls
  // socket hides bytes instead of refusing them; the connection's cap on
  // unread bytes bounds memory instead.
  pause(): void {}
  resume(): void {}

  write(header: Uint8Array, payload: Uint8Array): Promise<void> {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      if (socket.destroyed || !socket.writable) {
        reject(Object.assign(new Error("broken pipe"), { code: "EPIPE" }));
        return;
      }
      const done = (error?: Error | null) => error ? reject(error) : resolve();
      if (payload.length <= COALESCE_BYTES) {
        const frame = new Uint8Array(header.length + payload.length);
        frame.set(header);
        frame.set(payload, header.length);
        socket.write(frame, done);
      } else {
        // Two writes rather than a copy of up to 1 MiB just to prefix 4 bytes.
        socket.write(header);
        socket.write(payload, done);
      }
    });
  }

  close(): void {
    const socket = this.#socket;
    if (socket.destroyed || this.#timer !== undefined) return;
    socket.end();
    // A client that never answers the goodbye must not keep the socket.
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    Deno.unrefTimer(timer as unknown as number);
    this.#timer = timer;
  }
}

/** The hospital's listener; see the module documentation. */
export class Server {
  #server: tls.Server;
  #options: ServerOptions;
  #handshakeTimeoutMs: number;
  #maxHandshakes: number;
  #maxWaiting: number;
  /** Connections in the handshake or in `authorize`, oldest first. */
  #pending = new Map<net.Socket, Pending>();
  /** TCP sockets refused here, so the TLS error their closing causes is not reported again. */
  #refused = new WeakSet<net.Socket>();
  #waiting = 0;
  #ready: Connection[] = [];
  #waiters = new Set<() => void>();
  #closed = false;
  /** The address actually bound. */
  readonly hostname: string;
  readonly port: number;

  /** Use {@linkcode listen}. */
  constructor(server: tls.Server, options: ServerOptions, address: net.AddressInfo) {
    this.#server = server;
    this.#options = options;
    this.#handshakeTimeoutMs = positiveInteger(
      options.handshakeTimeoutMs,
      DEFAULT_HANDSHAKE_TIMEOUT_MS,
      "handshakeTimeoutMs",
    );
    this.#maxHandshakes = positiveInteger(options.maxHandshakes, 256, "maxHandshakes");
    this.#maxWaiting = positiveInteger(options.maxWaiting, 1024, "maxWaiting");
    this.hostname = address.address;
    this.port = address.port;
    // Deno 2.9.6's node:tls gives every connection its own handshake timer
    // (server._handshakeTimeout, 120 s unless set) that a destroyed socket
    // does not cancel: each connection refused here stayed on the heap, TLS
    // state and all, until its timer fired (measured: 12,000 strangers
    // evicted within a minute grew the heap by 65 MiB that no GC could
    // free). This listener's own timer does that job and is cleared on
    // every refusal, so the runtime's is turned off.
    const internal = server as unknown as { _handshakeTimeout?: number };
    if (typeof internal._handshakeTimeout === "number") internal._handshakeTimeout = 0;
    // Accept errors (say, out of descriptors) concern one connection; without
    // a listener node would treat them as fatal.
    server.on("error", () => {});
    server.on("connection", (raw: net.Socket) => this.#onConnection(raw));
    server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
      const raw = parentOf(socket);
      socket.destroy();
      if (raw && this.#refused.has(raw)) return;
      const pending = raw && this.#pending.get(raw);
      const remote = pending?.remote ?? remoteOf(raw);
      const action = `accept a connection from ${remote}`;
      let mapped = transportError(error, { action, peer: "the client" });
      if (mapped instanceof TransportError && mapped.reason === "reset") {
        // Deno's node:tls reports a client certificate that failed
        // verification (another CA, expired, no clientAuth) as "socket hang
        // up", just like a client that left: say both.
        mapped = new TransportError(
          `Cannot ${action}: the client left during the TLS handshake, or its certificate was refused (not issued by the consortium CA, expired, or not for TLS clients)`,
          { reason: "reset", cause: error },
        );
      }
      this.#refuse(pending, mapped, remote);
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      this.#onSecure(socket).catch(() => socket.destroy());
    });
  }

  /** Connections between TCP accept and a successful `authorize`. */
  get handshaking(): number {
    return this.#pending.size;
  }

  /** Authorized connections whose first message was not yet accepted (handed out or not). */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * The next authorized connection. Throws {@linkcode ConnectionClosedError}
   * once the server is closed, and the abort reason if `signal` aborts.
   */
  async accept(signal: AbortSignal): Promise<Connection> {
    for (;;) {
      const next = this.#ready.shift();
      if (next && !next.closed) return next;
      if (next) continue;
      if (this.#closed) throw new ConnectionClosedError("Cannot accept: the server is closed");
      if (signal.aborted) throw abortReason(signal);
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          this.#waiters.delete(wake);
          reject(abortReason(signal));
        };
        this.#waiters.add(wake);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /**
   * Stops listening and closes every connection not yet handed out; safe to
   * call more than once. Connections already returned by {@linkcode accept}
   * are their holder's to close.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const pending of this.#pending.values()) {
      // Closed here, not refused: the TLS error its closing causes is not a refusal to report.
      this.#refused.add(pending.raw);
      clearTimeout(pending.timer);
      pending.secure?.destroy();
      pending.raw.destroy();
    }
    this.#pending.clear();
    for (const connection of this.#ready.splice(0)) connection.close();
    this.#notify();
  }

  #notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  #onConnection(raw: net.Socket): void {
    if (this.#closed) {
      raw.destroy();
      return;
    }
    raw.setNoDelay(true);
    raw.on("error", () => {});
    const remote = remoteOf(raw);
    if (this.#pending.size >= this.#maxHandshakes) {
      const oldest = this.#pending.values().next().value!;
      this.#refuse(
        oldest,
        new TransportError(
          `Cannot accept a connection from ${oldest.remote}: ${this.#maxHandshakes} connections were in the TLS handshake, and it was the oldest (a flood of connections, or a limit too low for this many parties)`,
          { reason: "busy" },
        ),
      );
    }
    const pending: Pending = {
      raw,
      remote,
      timer: setTimeout(() => {
        this.#refuse(
          pending,
          new TransportError(
            `Cannot accept a connection from ${remote}: no TLS handshake and certificate check within ${this.#handshakeTimeoutMs} ms (the client stalled, or is not a sumshare peer)`,
            { reason: "timeout" },
          ),
        );
      }, this.#handshakeTimeoutMs),
    };
    this.#pending.set(raw, pending);
    raw.once("close", () => {
      const entry = this.#pending.get(raw);
      if (entry) {
        clearTimeout(entry.timer);
        this.#pending.delete(raw);
      }
    });
  }

  async #onSecure(socket: tls.TLSSocket): Promise<void> {
    socket.on("error", () => {});
    const raw = parentOf(socket);
    const pending = raw && this.#pending.get(raw);
    if (!pending || this.#closed) {
      // Evicted or timed out while its handshake finished.
      socket.destroy();
      return;
    }
    pending.secure = socket;
    socket.setNoDelay(true);
    const limits = this.#options.connection ?? {};
    const link = new NodeSocketLink(
      socket,
      FRAME_HEADER_BYTES + (limits.preAuthFrameLimit ?? PRE_AUTH_FRAME_LIMIT),
    );
    const action = `accept a connection from ${pending.remote}`;
    // The leaf's DER only: getPeerCertificate(true) builds node's legacy
    // object for the whole chain first (measured 0.15–0.25 ms a connection
    // against 0.02–0.05 ms, about 0.5 s of a 1,000-peer round's accepts).
    const der = socket.getPeerX509Certificate()?.raw;
    if (!der || der.length === 0) {
      this.#refuse(
        pending,
        new TransportError(`Cannot ${action}: the client presented no certificate`, {
          reason: "no-certificate",
        }),
      );
      return;
    }
    let party: string;
    try {
      party = await this.#options.authorize(new Uint8Array(der));
      if (typeof party !== "string" || party === "") {
        throw new TypeError("authorize returned no party name");
      }
    } catch (error) {
      this.#refuse(
        pending,
        new TransportError(
          `Cannot ${action}: its certificate was refused: ${(error as Error).message ?? error}`,
          { reason: "not-authorized", cause: error },
        ),
      );
      return;
    }
    if (link.overrun) {
      // Checked first: the overrun closed the socket, which ends its pending entry too.
      this.#refuse(
        pending,
        new TransportError(
          `Cannot ${action}: ${party} sent more than one frame before its first message was accepted`,
          { reason: "overrun" },
        ),
      );
      return;
    }
    if (this.#pending.get(pending.raw) !== pending || this.#closed) return; // timed out meanwhile
    clearTimeout(pending.timer);
    this.#pending.delete(pending.raw);
    if (this.#waiting >= this.#maxWaiting) {
      this.#refuse(
        pending,
        new TransportError(
          `Cannot ${action} (${party}): ${this.#maxWaiting} connections are already waiting for their first message (raise maxWaiting if the round has this many parties)`,
          { reason: "busy" },
        ),
      );
      return;
    }
    this.#waiting++;
    const connection = new Connection(link, {
      ...limits,
      remote: pending.remote,
      peer: party,
      party,
      onAdmitted: () => this.#waiting--,
    });
    this.#ready.push(connection);
    this.#notify();
  }

  /** Closes a connection that will not be handed out, and says why. */
  #refuse(pending: Pending | undefined, error: TransportError | Error, remote?: string): void {
    if (pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(pending.raw);
      this.#refused.add(pending.raw);
      pending.secure?.destroy();
      pending.raw.destroy();
    }
    const where = pending?.remote ?? remote ?? "an unknown address";
    const reported = error instanceof TransportError
      ? error
      : new TransportError(error.message, { reason: "bug", cause: error });
    this.#options.onRefused?.(reported, where);
  }
}

/**
 * Listens for mutual-TLS connections from consortium members. Throws
 * {@linkcode TransportError} when the address cannot be bound (in use, not
 * this machine's, …).
 */
export async function listen(options: ServerOptions): Promise<Server> {
  const address = formatHostPort({ hostname: options.hostname, port: options.port });
  // node:net throws a missing permission out of reach of any handler.
  const permission = await Deno.permissions.query({ name: "net", host: address });
  if (permission.state !== "granted") {
    throw transportError(
      new Deno.errors.NotCapable(`Requires net access to "${address}"`),
      { action: `listen on ${address}`, peer: "this machine" },
    );
  }
  await checkCredentials(options, `listen on ${address}`);
  const handshakeTimeoutMs = positiveInteger(
    options.handshakeTimeoutMs,
    DEFAULT_HANDSHAKE_TIMEOUT_MS,
    "handshakeTimeoutMs",
  );
  const server = tls.createServer({
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    // Where the runtime's own handshake timer cannot be turned off (see
    // Server), it at least holds a refused socket no longer than ours.
    handshakeTimeout: handshakeTimeoutMs,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    server.close();
    throw transportError(error, { action: `listen on ${address}`, peer: "this machine" });
  }
  const bound = server.address();
  if (bound === null || typeof bound === "string") {
    server.close();
    throw new Error(`Cannot listen on ${address}: the listener has no TCP address (a bug)`);
  }
  try {
    return new Server(server, options, bound);
  } catch (error) {
    server.close();
    throw error;
  }
}
