/**
 * What one mutual-TLS connection costs on loopback (lib/net): the handshake
 * (TCP, TLS, the certificate check), the first and later round trips, and
 * 64 MiB moved in 512 KiB frames each way — the bytes a peer uploads for
 * D = 2^23 elements. The numbers are printed for docs/performance; the test
 * asserts that every byte arrived, in order, without the hospital's unread
 * bytes reaching the connection's cap, even when it hashes every frame.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../lib/net/connection.ts";
import { connectAs, deadline, pairUp, startServer, testPki } from "./helpers.ts";

const pki = await testPki();
const FRAME = 512 * 1024;
const TOTAL = 64 * 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Sends TOTAL bytes in FRAME-byte frames, two in flight, as a vector upload would. */
async function upload(from: Connection, signal: AbortSignal): Promise<void> {
  const frame = new Uint8Array(FRAME);
  let pending: Promise<void> | undefined;
  try {
    for (let i = 0; i < TOTAL / FRAME; i++) {
      frame[0] = i & 0xff;
      const write = from.write(frame.slice(), signal);
      write.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
      if (pending) await pending;
      pending = write;
    }
  } finally {
    await pending?.catch(() => {});
  }
  await pending;
}

/** Receives the upload, checking each frame's tag; returns the most bytes left unread. */
async function receive(
  to: Connection,
  signal: AbortSignal,
  work?: (frame: Uint8Array<ArrayBuffer>) => Promise<unknown>,
): Promise<number> {
  let most = 0;
  for (let i = 0; i < TOTAL / FRAME; i++) {
    const frame = await to.readFrame(signal);
    most = Math.max(most, to.buffered);
    assert.equal(frame.length, FRAME);
    assert.equal(frame[0], i & 0xff, `frame ${i} in order`);
    if (work) await work(frame);
  }
  return most;
}

Deno.test("one TLS connection: handshake, round trips, 64 MiB in 512 KiB frames each way", async () => {
  using time = deadline(35_000);
  const { signal } = time;
  const server = await startServer(pki);
  try {
    // Handshake: connect() to the hospital holding an authorized connection.
    const connects: number[] = [];
    const handshakes: number[] = [];
    const firstTrips: number[] = [];
    const laterTrips: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      const accepted = server.server.accept(signal);
      const client = await connectAs(pki, server.server, "alice", signal);
      connects.push(performance.now() - t0);
      using pair = { client, accepted: await accepted, [Symbol.dispose]() {} };
      handshakes.push(performance.now() - t0);
      using _close = {
        [Symbol.dispose]() {
          pair.client.close();
          pair.accepted.close();
        },
      };
      for (let trip = 0; trip < 3; trip++) {
        const t1 = performance.now();
        await pair.client.write(new Uint8Array([trip]), signal);
        await pair.accepted.write(await pair.accepted.readFrame(signal), signal);
        await pair.client.readFrame(signal);
        (trip === 0 ? firstTrips : laterTrips).push(performance.now() - t1);
      }
    }

    using pair = await pairUp(pki, server.server, "bob", signal);
    await pair.client.write(new Uint8Array([1]), signal);
    await pair.accepted.readFrame(signal);
    pair.accepted.raiseLimit();
    pair.client.raiseLimit();
    // As the runtime would once a party announced its input: room for all of it.
    pair.accepted.setMaxBufferedBytes(TOTAL + (TOTAL / FRAME) * 4);

    let t = performance.now();
    const [, mostUnread] = await Promise.all([
      upload(pair.client, signal),
      receive(pair.accepted, signal),
    ]);
    const upMs = performance.now() - t;

    t = performance.now();
    await Promise.all([upload(pair.accepted, signal), receive(pair.client, signal)]);
    const downMs = performance.now() - t;

    // The hospital hashing every frame as it reads (as the input digest does).
    t = performance.now();
    const [, mostWhileHashing] = await Promise.all([
      upload(pair.client, signal),
      receive(pair.accepted, signal, (f) => crypto.subtle.digest("SHA-256", f)),
    ]);
    const hashedMs = performance.now() - t;

    const mbps = (ms: number) => (TOTAL / 2 ** 20 / (ms / 1000)).toFixed(0);
    console.log(
      `connect() (TCP + TLS 1.3, peer side) median ${median(connects).toFixed(1)} ms; ` +
        `until the hospital holds the authorized connection ${median(handshakes).toFixed(1)} ms; ` +
        `first round trip median ${median(firstTrips).toFixed(1)} ms, later ${
          median(laterTrips).toFixed(2)
        } ms`,
    );
    console.log(
      `64 MiB in 512 KiB frames: peer → hospital ${upMs.toFixed(0)} ms (${mbps(upMs)} MiB/s), ` +
        `hospital → peer ${downMs.toFixed(0)} ms (${mbps(downMs)} MiB/s), ` +
        `peer → hospital hashing each frame ${hashedMs.toFixed(0)} ms (${mbps(hashedMs)} MiB/s)`,
    );
    console.log(
      `hospital's most unread bytes: ${mostUnread} plain, ${mostWhileHashing} while hashing`,
    );
    assert.equal(pair.accepted.stats.bytesIn, 4 + 1 + 2 * (TOTAL + (TOTAL / FRAME) * 4));
    assert.equal(pair.client.stats.bytesIn, TOTAL + (TOTAL / FRAME) * 4);
  } finally {
    server.server.close();
  }
});
