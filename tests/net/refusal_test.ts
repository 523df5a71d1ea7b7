/**
 * Who the hospital's listener turns away, and how each side says so:
 * - a client without a certificate is refused in the TLS handshake and never
 *   gets a connection (so never reaches frame decoding);
 * - a certificate from a foreign CA, or for code signing only, is refused by
 *   TLS;
 * - the CA's own certificate passes TLS and is refused by `authorize`, as is
 *   any certificate `authorize` refuses: the socket is closed;
 * - a frame over the pre-authentication limit is refused as soon as its
 *   header is in, before anything is allocated for it;
 * - more than one frame before the first message is accepted, or more unread
 *   bytes than the cap after, closes the connection as an overrun.
 * Each refusal is reported once, as a one-line TransportError.
 */
import assert from "node:assert/strict";
import { ConnectionClosedError } from "../../lib/errors.ts";
import type { Connection } from "../../lib/net/connection.ts";
import { TransportError } from "../../lib/net/errors.ts";
import { FRAME_HEADER_BYTES, FrameError, PRE_AUTH_FRAME_LIMIT } from "../../lib/wire/frame.ts";
import {
  closeQuietly,
  CODE_SIGNING,
  connectAs,
  deadline,
  issueCertificate,
  pairUp,
  party,
  type Pki,
  startServer,
  testAuthorize,
  testPki,
  within,
} from "./helpers.ts";

const pki = await testPki();

/** A raw `Deno.connectTls` to the server, with or without a client certificate. */
async function rawTls(
  pki: Pki,
  port: number,
  pair?: { cert: string; key: string },
): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [pki.home.ca.cert],
    ...(pair ?? {}),
  });
  await conn.handshake();
  return conn;
}

/** A frame header announcing `length` bytes. */
function header(length: number): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

/** The error a pending read on a raw connection ends with, or "eof"; gives up at `signal`. */
async function readEnd(conn: Deno.TlsConn, signal: AbortSignal): Promise<string> {
  const onAbort = () => closeQuietly(conn);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while ((await conn.read(new Uint8Array(1024))) !== null) { /* drain */ }
    return "eof";
  } catch (error) {
    if (signal.aborted) throw new Error("the server never closed the connection");
    return `${(error as Error).name}: ${(error as Error).message}`;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Checks that the next connection the server hands out is an honest alice, and closes both. */
async function honestStillAccepted(
  server: Awaited<ReturnType<typeof startServer>>,
  signal: AbortSignal,
): Promise<void> {
  const [client, accepted] = await Promise.all([
    connectAs(pki, server.server, "alice", signal),
    server.server.accept(signal),
  ]);
  try {
    assert.equal(accepted.party, "alice", "the next connection handed out is the honest one");
    await client.write(new Uint8Array([1]), signal);
    assert.deepEqual(await accepted.readFrame(signal), new Uint8Array([1]));
  } finally {
    client.close();
    accepted.close();
  }
}

Deno.test("a client without a certificate is refused in the TLS handshake, never handed out", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  let conn: Deno.TlsConn | undefined;
  try {
    conn = await rawTls(pki, server.server.port);
    // In TLS 1.3 the client may send right after its Finished; this must never
    // reach a frame decoder (it would be refused as over the limit there).
    await conn.write(header(0xffff_ffff)).catch(() => 0);
    const client = await readEnd(conn, signal);
    assert.match(client, /CertificateRequired/, "the client hears why: a certificate is required");
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "no-certificate");
    assert.match(refusal.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(
      refusal.error.message,
      `Cannot accept a connection from ${refusal.remote}: the client presented no certificate (only consortium members may connect, each with its own certificate)`,
    );
    await honestStillAccepted(server, signal);
    assert.equal(server.refusals.length, 1, "refused once, and nothing about frames");
    assert.equal(server.server.handshaking, 0);
  } finally {
    if (conn) closeQuietly(conn);
    server.server.close();
  }
});

Deno.test("a certificate from a foreign CA is refused by TLS; the peer is told it may be its certificate", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  let client: Connection | undefined;
  try {
    // Foreign alice, who trusts the real hospital: TLS 1.3 lets her handshake
    // finish before the server has checked her certificate.
    client = await connectAs(pki, server.server, "alice", signal, { consortium: pki.foreign });
    const error = await client.readFrame(signal).then(() => undefined, (e) => e);
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.reason, "reset");
    assert.match(
      error.message,
      /^Cannot read from the hospital: the hospital closed the connection abruptly .*: it may have refused this party's certificate \(check that it is issued by the consortium CA/,
    );
    const refusal = await server.nextRefusal(0, signal);
    assert.match(
      refusal.error.message,
      /its certificate was refused \(not issued by the consortium CA/,
    );
    await honestStillAccepted(server, signal);
  } finally {
    client?.close();
    server.server.close();
  }
});

Deno.test("a codeSigning-only certificate from the consortium CA is refused by TLS", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  let conn: Deno.TlsConn | undefined;
  try {
    const codeSigner = await issueCertificate(pki.home, "alice", { usages: [CODE_SIGNING] });
    conn = await rawTls(pki, server.server.port, codeSigner);
    assert.match(await readEnd(conn, signal), /UnexpectedEof|close_notify/);
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "reset");
    await honestStillAccepted(server, signal);
  } finally {
    if (conn) closeQuietly(conn);
    server.server.close();
  }
});

Deno.test("the CA's own certificate passes TLS but authorize refuses it and the socket is closed", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  let authorized = 0;
  const policy = testAuthorize(pki.home.ca.cert);
  const server = await startServer(pki, {
    authorize: (der) => {
      authorized++;
      return policy(der);
    },
  });
  let client: Connection | undefined;
  try {
    client = await connectAs(pki, server.server, "alice", signal, {
      cert: pki.home.ca.cert,
      key: pki.home.ca.key,
    });
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(authorized, 1, "TLS let the CA certificate through to authorize");
    assert.equal(refusal.error.reason, "not-authorized");
    assert.match(
      refusal.error.message,
      /^Cannot accept a connection from 127\.0\.0\.1:\d+: its certificate was refused: the certificate is a CA certificate, not a party's$/,
    );
    const error = await client.readFrame(signal).then(() => undefined, (e) => e);
    assert.ok(
      error instanceof TransportError || error instanceof ConnectionClosedError,
      String(error),
    );
    assert.match(error.message, /it may have refused this party's certificate/);
    await honestStillAccepted(server, signal);
  } finally {
    client?.close();
    server.server.close();
  }
});

Deno.test("authorize refusing a party closes its connection; others are accepted", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const policy = testAuthorize(pki.home.ca.cert);
  const server = await startServer(pki, {
    authorize: async (der) => {
      const name = await policy(der);
      if (name === "bob") throw new Error("bob is not invited to this consortium's rounds");
      return name;
    },
  });
  let bob: Connection | undefined;
  try {
    bob = await connectAs(pki, server.server, "bob", signal);
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "not-authorized");
    assert.match(refusal.error.message, /its certificate was refused: bob is not invited/);
    await assert.rejects(bob.readFrame(signal), /it may have refused this party's certificate/);
    await honestStillAccepted(server, signal);
    assert.equal(server.server.waiting, 0);
  } finally {
    bob?.close();
    server.server.close();
  }
});

Deno.test("a frame over the pre-authentication limit is refused at its header, before allocation", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  const opened: Deno.TlsConn[] = [];
  const accepted: Connection[] = [];
  try {
    for (const announced of [PRE_AUTH_FRAME_LIMIT + 1, 0xffff_ffff]) {
      const conn = await rawTls(pki, server.server.port, party(pki.home, "carol"));
      opened.push(conn);
      const hospitalSide = await server.server.accept(signal);
      accepted.push(hospitalSide);
      const rssBefore = Deno.memoryUsage().rss;
      // Only the header: no payload byte is ever sent.
      await conn.write(header(announced));
      const error = await hospitalSide.readFrame(signal).then(() => undefined, (e) => e);
      assert.ok(error instanceof FrameError, String(error));
      assert.equal(
        error.message,
        `Cannot read frame: a payload of ${announced} bytes exceeds the limit of ${PRE_AUTH_FRAME_LIMIT} bytes`,
      );
      assert.equal(hospitalSide.buffered, 0, "nothing of it is held");
      assert.ok(
        Deno.memoryUsage().rss - rssBefore < 64 * 1024 * 1024,
        "no buffer of the announced size was allocated",
      );
      assert.ok(hospitalSide.closed, "the connection is closed");
      assert.match(
        await readEnd(conn, signal),
        /eof|UnexpectedEof|reset/i,
        "the client sees it closed",
      );
    }
  } finally {
    for (const c of opened) closeQuietly(c);
    for (const c of accepted) c.close();
    server.server.close();
  }
});

Deno.test("more than one frame before the first message is accepted closes the connection", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  try {
    using pair = await pairUp(pki, server.server, "alice", signal);
    const { client, accepted: hospitalSide } = pair;
    const frame = new Uint8Array(10_000).fill(1);
    await client.write(frame, signal);
    await client.write(frame, signal);
    const error = await hospitalSide.readFrame(signal).then(() => undefined, (e) => e);
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.reason, "overrun");
    assert.equal(
      error.message,
      "Cannot read from alice: it sent more than one frame before its first message was accepted",
    );
    assert.ok(hospitalSide.buffered <= FRAME_HEADER_BYTES + PRE_AUTH_FRAME_LIMIT);
    assert.equal(server.server.waiting, 0, "a closed connection no longer counts as waiting");
  } finally {
    server.server.close();
  }
});

Deno.test("after acceptance, more unread bytes than maxBufferedBytes closes the connection", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki, {
    connection: { frameLimit: 150_000, maxBufferedBytes: 200_000 },
  });
  try {
    using pair = await pairUp(pki, server.server, "bob", signal);
    const { client, accepted: hospitalSide } = pair;
    await client.write(new Uint8Array([1]), signal);
    await hospitalSide.readFrame(signal);
    hospitalSide.raiseLimit();
    // The hospital reads nothing while bob sends 40 × 100 kB.
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) writes.push(client.write(new Uint8Array(100_000), signal));
    await Promise.allSettled(writes);
    const frames: number[] = [];
    const error = await (async () => {
      for (;;) frames.push((await hospitalSide.readFrame(signal)).length);
    })().then(() => undefined, (e) => e);
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.reason, "overrun");
    assert.match(error.message, /^Cannot read from bob: it sent more than 200000 unread bytes/);
    assert.ok(frames.length < 40, "not every frame was buffered");
  } finally {
    server.server.close();
  }
});

Deno.test("random bytes at the port: refused as not TLS, never handed out", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const server = await startServer(pki);
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port: server.server.port });
    const noise = new Uint8Array(64);
    crypto.getRandomValues(noise);
    noise[0] = 0x47; // "G": never a TLS record type
    await conn.write(noise);
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "not-tls");
    assert.match(refusal.error.message, /the client does not speak TLS \(check the port/);
    await honestStillAccepted(server, signal);
  } finally {
    if (conn) closeQuietly(conn);
    server.server.close();
  }
});

Deno.test("closing the server ends a waiting accept and closes connections not yet handed out", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  // A waiting accept ends when the server closes.
  const idle = await startServer(pki);
  const waiting = idle.server.accept(signal);
  idle.server.close();
  await assert.rejects(waiting, {
    name: "ConnectionClosedError",
    message: "Cannot accept: the server is closed",
  });

  // A connection authorized and queued, never accepted, is closed with the server.
  const policy = testAuthorize(pki.home.ca.cert);
  const authorized = Promise.withResolvers<void>();
  const server = await startServer(pki, {
    authorize: async (der) => {
      const name = await policy(der);
      authorized.resolve();
      return name;
    },
  });
  let client: Connection | undefined;
  try {
    client = await connectAs(pki, server.server, "alice", signal);
    await within(authorized.promise, signal);
    // One turn of the event loop: the server queues alice right after authorize returns.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(server.server.waiting, 1, "alice is queued, not handed out");
    server.server.close();
    server.server.close();
    assert.equal(server.server.waiting, 0);
    await assert.rejects(client.readFrame(signal), {
      name: "ConnectionClosedError",
      message: /^The hospital closed the connection: it may have refused/,
    });
    await assert.rejects(server.server.accept(signal), ConnectionClosedError);
  } finally {
    client?.close();
    server.server.close();
  }
});

Deno.test("bytes sent while authorize is still deciding are capped too: more than one frame is refused", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const policy = testAuthorize(pki.home.ca.cert);
  const release = Promise.withResolvers<void>();
  const asked = Promise.withResolvers<void>();
  const server = await startServer(pki, {
    authorize: async (der) => {
      asked.resolve();
      await release.promise;
      return await policy(der);
    },
  });
  let conn: Deno.TlsConn | undefined;
  try {
    conn = await rawTls(pki, server.server.port, party(pki.home, "bob"));
    await within(asked.promise, signal);
    // 40 kB of frames while the certificate check is still running.
    const frame = new Uint8Array(10_004);
    new DataView(frame.buffer).setUint32(0, 10_000);
    for (let i = 0; i < 4; i++) await conn.write(frame);
    assert.match(await readEnd(conn, signal), /eof|UnexpectedEof|reset/i, "closed on the spot");
    release.resolve();
    const refusal = await server.nextRefusal(0, signal);
    assert.equal(refusal.error.reason, "overrun");
    assert.match(
      refusal.error.message,
      /: bob sent more than one frame before its first message was accepted$/,
    );
    assert.equal(server.server.waiting, 0, "never handed out");
    await honestStillAccepted(server, signal);
  } finally {
    release.resolve();
    if (conn) closeQuietly(conn);
    server.server.close();
  }
});
