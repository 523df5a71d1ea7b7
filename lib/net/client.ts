/**
 * A peer's one connection to the hospital: `Deno.connectTls` presenting the
 * peer's consortium certificate (`Deno.startTls` cannot present one,
 * denoland/deno#21496), with the TLS handshake completed under a deadline.
 *
 * TLS verifies the hospital's chain and that its certificate names the host
 * connected to. Note that Deno adds `caCerts` to its default roots rather
 * than replacing them, and its client cannot show the server's certificate
 * to the program: so the check that the hospital's certificate is the
 * consortium's and carries the expected hospital name (CN) happens at the
 * protocol layer, on the certificate the signed INVITE carries.
 *
 * Deno 2.9.6's `TlsConn` has no `setNoDelay` and no way to reach the TCP
 * socket under it, so Nagle stays on here, which costs one ~42 ms stall
 * while the handshake's last flight waits for a delayed ACK (measured: the
 * first round trip after the handshake takes 42–47 ms, the next 0.1 ms).
 * The hospital's side has Nagle off; each frame up to 16 KiB goes out in one
 * write, so later exchanges do not stall. If a later Deno adds `setNoDelay`
 * to `TlsConn`, it is used.
 *
 * In TLS 1.3 the client's handshake completes before the server has checked
 * the client certificate, so a refusal shows on the first read or write: the
 * connection then says the hospital may have refused this party's
 * certificate.
 *
 * @module
 */

import { abortable, abortReason } from "../deadline.ts";
import { TimeoutError } from "../errors.ts";
import { formatHostPort } from "../names.ts";
import { Connection, type ConnectionOptions, type Link, type LinkSink } from "./connection.ts";
import { checkCredentials } from "./credentials.ts";
import { transportError } from "./errors.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** The hospital's host (as its certificate names it) and port. */
  hostname: string;
  port: number;
  /** The consortium CA certificate, PEM: the hospital's certificate must chain to it. */
  ca: string;
  /** This party's certificate and private key, PEM, presented to the hospital. */
  cert: string;
  key: string;
  /** Time for TCP connect and TLS handshake together; default 10 s. */
  handshakeTimeoutMs?: number;
  /** The other side in messages; default "the hospital". */
  peer?: string;
  /** Frame limits of the connection. */
  connection?: ConnectionOptions;
}

/** Bytes asked of the socket per read. */
const READ_BYTES = 64 * 1024;

/** Frame data written in one piece with its header when this small. */
const COALESCE_BYTES = 16 * 1024;

/**
 * A `Deno.TlsConn` as a {@linkcode Link}: one read in flight at a time, and
 * none while the connection holds a whole frame unread (real backpressure).
 */
class DenoTlsLink implements Link {
  #conn: Deno.TlsConn;
  #paused = false;
  #resume: (() => void) | undefined;
  #closed = false;

  constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
  }

  start(sink: LinkSink): void {
    this.#pump(sink);
  }

  async #pump(sink: LinkSink): Promise<void> {
    const buffer = new Uint8Array(READ_BYTES);
    try {
      for (;;) {
        while (this.#paused && !this.#closed) {
          await new Promise<void>((resolve) => this.#resume = resolve);
        }
        if (this.#closed) return;
        const n = await this.#conn.read(buffer);
        if (n === null) {
          sink.end();
          return;
        }
        // The decoder copies what it is given, so one buffer serves every read.
        sink.data(buffer.subarray(0, n));
      }
    } catch (error) {
      sink.end(error);
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  async write(header: Uint8Array, payload: Uint8Array): Promise<void> {
    if (payload.length <= COALESCE_BYTES) {
      // One write, so Nagle cannot hold the payload back behind its header.
      const frame = new Uint8Array(header.length + payload.length);
      frame.set(header);
      frame.set(payload, header.length);
      await this.#writeAll(frame);
    } else {
      await this.#writeAll(header);
      await this.#writeAll(payload);
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.resume();
    try {
      // Sends close_notify: the hospital sees a clean end.
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/**
 * Connects to the hospital and completes the TLS handshake, within
 * `handshakeTimeoutMs` and until `signal` aborts. Throws a `TransportError`
 * (lib/net/errors.ts) saying what failed and what to check.
 */
export async function connect(options: ConnectOptions, signal: AbortSignal): Promise<Connection> {
  const timeoutMs = options.handshakeTimeoutMs ?? 10_000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new RangeError(`Invalid handshakeTimeoutMs ${timeoutMs}: expected a positive integer`);
  }
  const address = formatHostPort({ hostname: options.hostname, port: options.port });
  const peer = options.peer ?? "the hospital";
  // The runtime's `peer` may name the address already ("the hospital at HOST:PORT").
  const target = peer.includes(address) ? peer : `${peer} at ${address}`;
  const context = { action: `connect to ${target}`, peer };
  if (signal.aborted) throw abortReason(signal);
  await checkCredentials(options, context.action);
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new TimeoutError(`no TLS connection within ${timeoutMs} ms`),
      ),
    timeoutMs,
  );
  const stop = AbortSignal.any([signal, deadline.signal]);
  let conn: Deno.TlsConn | undefined;
  const pending = Deno.connectTls({
    hostname: options.hostname,
    port: options.port,
    caCerts: [options.ca],
    cert: options.cert,
    key: options.key,
  });
  try {
    conn = await abortable(pending, stop);
    const noDelay = (conn as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay;
    if (typeof noDelay === "function") noDelay.call(conn, true);
    await abortable(conn.handshake(), stop);
  } catch (error) {
    // A connection that arrives after the deadline is closed when it does.
    if (conn === undefined) pending.then((late) => late.close(), () => {});
    else closeQuietly(conn);
    if (signal.aborted) throw abortReason(signal);
    throw transportError(deadline.signal.aborted ? abortReason(deadline.signal) : error, context);
  } finally {
    clearTimeout(timer);
  }
  return new Connection(new DenoTlsLink(conn), {
    ...options.connection,
    remote: address,
    peer,
    earlyCloseHint:
      "it may have refused this party's certificate (check that it is issued by the consortium CA, valid today, and for this party's name) or be shutting down: see its log",
  });
}

function closeQuietly(conn: Deno.TlsConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
