/**
 * Frames over real mutual TLS (lib/net): a consortium peer and the
 * hospital exchange frames both ways, up to the 1 MiB + 64 maximum once the
 * first message is accepted; writes never interleave; EOF between frames is
 * a clean close, inside a frame a short-read error; aborts leave a
 * connection usable; close is idempotent.
 */
import assert from "node:assert/strict";
import { ConnectionClosedError } from "../../lib/errors.ts";
import { TransportError } from "../../lib/net/errors.ts";
import type { Connection } from "../../lib/net/connection.ts";
import type { Server } from "../../lib/net/server.ts";
import { FRAME_LIMIT, FrameError, PRE_AUTH_FRAME_LIMIT } from "../../lib/wire/frame.ts";
import {
  closeQuietly,
  deadline,
  pairUp,
  pattern,
  sameBytes,
  startServer,
  testPki,
} from "./helpers.ts";

const pki = await testPki();

/** What a test gets from {@linkcode overPair}. */
interface PairContext {
  client: Connection;
  hospitalSide: Connection;
  server: Server;
  signal: AbortSignal;
}

/**
 * Runs `body` on `name`'s connection to a fresh server and the server's side
 * of it, all within 20 s; closes both connections and the server after.
 */
async function overPair(name: string, body: (pair: PairContext) => Promise<void>): Promise<void> {
  using time = deadline(20_000);
  const { signal } = time;
  const { server } = await startServer(pki);
  try {
    using pair = await pairUp(pki, server, name, signal);
    await body({ client: pair.client, hospitalSide: pair.accepted, server, signal });
  } finally {
    server.close();
  }
}

Deno.test("a consortium peer and the hospital exchange frames both ways, up to 1 MiB + 64", () =>
  overPair("alice", async ({ client, hospitalSide, server, signal }) => {
    assert.equal(hospitalSide.party, "alice", "the party name comes from the certificate's CN");
    assert.equal(client.peer, "the hospital");
    assert.equal(hospitalSide.limit, PRE_AUTH_FRAME_LIMIT);
    assert.equal(server.waiting, 1);

    // The first message, under the pre-authentication limit, both ways.
    const join = new TextEncoder().encode('\x01{"v":2,"type":"join"}');
    await client.write(join, signal);
    assert.deepEqual(await hospitalSide.readFrame(signal), join);
    hospitalSide.raiseLimit();
    assert.equal(server.waiting, 0, "an accepted party no longer counts as waiting");
    assert.equal(hospitalSide.limit, FRAME_LIMIT);
    const invite = pattern(PRE_AUTH_FRAME_LIMIT, 1);
    await hospitalSide.write(invite, signal);
    assert.ok(sameBytes(await client.readFrame(signal), invite));
    client.raiseLimit();

    // The largest frame, both ways, and one byte frames.
    const big = pattern(FRAME_LIMIT, 2);
    const [, got] = await Promise.all([client.write(big, signal), hospitalSide.readFrame(signal)]);
    assert.ok(sameBytes(got, big), "1 MiB + 64 from peer to hospital arrives intact");
    const back = pattern(FRAME_LIMIT, 3);
    const [, gotBack] = await Promise.all([
      hospitalSide.write(back, signal),
      client.readFrame(signal),
    ]);
    assert.ok(sameBytes(gotBack, back), "1 MiB + 64 from hospital to peer arrives intact");
    await client.write(new Uint8Array([7]), signal);
    assert.deepEqual(await hospitalSide.readFrame(signal), new Uint8Array([7]));

    // Counters count headers and payloads.
    const sent = 4 + join.length + 4 + FRAME_LIMIT + 4 + 1;
    assert.equal(client.stats.bytesOut, sent);
    assert.equal(hospitalSide.stats.bytesIn, sent);
    assert.equal(hospitalSide.stats.framesIn, 3);
    assert.equal(client.stats.framesIn, 2);

    // A frame over the maximum is refused by the sender, before anything is sent.
    await assert.rejects(client.write(new Uint8Array(FRAME_LIMIT + 1), signal), FrameError);
    await assert.rejects(client.write(new Uint8Array(0), signal), FrameError);
    assert.equal(client.stats.bytesOut, sent);
  }));

Deno.test("concurrent writes never interleave: every frame arrives whole, in order", () =>
  overPair("bob", async ({ client, hospitalSide, signal }) => {
    await client.write(new Uint8Array([1]), signal);
    await hospitalSide.readFrame(signal);
    hospitalSide.raiseLimit();
    // Sizes around the coalescing threshold and the TLS record size, all at once.
    const sizes = [1, 5, 16 * 1024, 16 * 1024 + 1, 100_000, 524_293, 3, 70_000, FRAME_LIMIT, 2];
    const frames = sizes.map((n, i) => pattern(n, 100 + i));
    const writes = frames.map((f) => client.write(f, signal));
    for (const [i, expected] of frames.entries()) {
      const got = await hospitalSide.readFrame(signal);
      assert.ok(sameBytes(got, expected), `frame ${i} (${sizes[i]} bytes) arrived whole`);
    }
    await Promise.all(writes);
  }));

Deno.test("end of input between frames is a clean ConnectionClosedError; close is idempotent", () =>
  overPair("alice", async ({ client, hospitalSide, signal }) => {
    await client.write(new Uint8Array([1, 2]), signal);
    await client.write(new Uint8Array([3]), signal);
    client.close();
    client.close();
    assert.ok(client.closed);
    // Frames that arrived before the end are delivered first.
    assert.deepEqual(await hospitalSide.readFrame(signal), new Uint8Array([1, 2]));
    assert.deepEqual(await hospitalSide.readFrame(signal), new Uint8Array([3]));
    const error = await hospitalSide.readFrame(signal).then(() => undefined, (e) => e);
    assert.ok(error instanceof ConnectionClosedError, String(error));
    assert.match(error.message, /^alice closed the connection$/);
    // Reading or writing a connection closed here says so, without touching the socket.
    await assert.rejects(client.readFrame(signal), ConnectionClosedError);
    await assert.rejects(client.write(new Uint8Array([1]), signal), ConnectionClosedError);
  }));

Deno.test("a half-sent frame then close is a short-read error, not a clean close", async () => {
  using time = deadline(20_000);
  const { signal } = time;
  const { server } = await startServer(pki);
  let raw: Deno.TlsConn | undefined;
  let hospitalSide: Connection | undefined;
  try {
    const alice = pki.home.parties.get("alice")!;
    const accepted = server.accept(signal);
    raw = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: server.port,
      caCerts: [pki.home.ca.cert],
      cert: alice.cert,
      key: alice.key,
    });
    // A header announcing 1,000 bytes, then 10 of them, then a clean TLS close.
    const partial = new Uint8Array(14);
    new DataView(partial.buffer).setUint32(0, 1000);
    await raw.write(partial);
    hospitalSide = await accepted;
    raw.close();
    const error = await hospitalSide.readFrame(signal).then(() => undefined, (e) => e);
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.reason, "truncated");
    assert.match(error.message, /ended inside a frame \(10 of 1000 payload bytes arrived\)/);
  } finally {
    if (raw) closeQuietly(raw);
    hospitalSide?.close();
    server.close();
  }
});

Deno.test("an aborted read leaves the connection usable; an aborted queued write is not sent", () =>
  overPair("carol", async ({ client, hospitalSide, signal }) => {
    const stop = new AbortController();
    const reading = hospitalSide.readFrame(stop.signal);
    stop.abort(new Error("phase over"));
    await assert.rejects(reading, /phase over/);
    await client.write(new Uint8Array([9]), signal);
    assert.deepEqual(await hospitalSide.readFrame(signal), new Uint8Array([9]));

    // A write whose signal is already aborted never reaches the wire.
    const aborted = AbortSignal.abort(new Error("too late"));
    await assert.rejects(client.write(new Uint8Array([1]), aborted), /too late/);
    await client.write(new Uint8Array([2]), signal);
    assert.deepEqual(await hospitalSide.readFrame(signal), new Uint8Array([2]));
  }));
