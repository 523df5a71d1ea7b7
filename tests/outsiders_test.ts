/**
 * Outsiders on the port of a real `sumshare hospital` process, all at once
 * and held while an honest round runs on the same port:
 * - 500 idle TCP connections (more than the 256 the listener lets wait in a
 *   handshake, so the oldest are evicted as the honest peers arrive);
 * - 100 half-sent TLS records (a handshake record header announcing 16 KiB
 *   and 8 KiB of it) and 20 half-sent sumshare frames over plain TCP;
 * - random bytes; TLS without a certificate; a certificate from a foreign
 *   CA; a codeSigning-only certificate issued by the consortium CA (made
 *   here with @peculiar/x509);
 * - a slow client sending a TLS handshake one byte a second.
 *
 * The round completes with the right sum, each outsider is refused with a
 * one-line reason in the hospital's log (or never served, for the ones still
 * held when the round ends). The hospital holds at most `maxHandshakes` =
 * 256 strangers (its descriptors, read from /proc, say so) and its peak
 * resident memory (VmHWM) grows by less than {@linkcode BOUND_MIB}: what
 * lib/net/server.ts lets strangers pin (256 × (~45 KiB of socket and TLS
 * state + one partial TLS record ≤ 18 KiB) ≈ 16 MiB), plus what the
 * allocator keeps of the evicted ones' buffers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Consortium, createConsortium, writeConsortium } from "../lib/pki.ts";
import { type CliProcess, removeDir, scenario } from "./helpers.ts";
import { closeQuietly, CODE_SIGNING, issueCertificate, openIdle } from "./net/helpers.ts";
import { startHospital, startPeers } from "./scenarios.ts";
import { ended, FAULT_TIMEOUT_S, resultOf } from "./star_helpers.ts";

/** Strangers the hospital holds before authentication (lib/net/server.ts, maxHandshakes). */
const MAX_HANDSHAKES = 256;
/** Per stranger held: socket and TLS state (~45 KiB measured) plus one partial TLS record (≤ 18 KiB). */
const PER_STRANGER_BYTES = (45 + 18) * 1024;
/**
 * What the flood may add to the hospital's peak RSS: the strangers it holds
 * (256 × 63 KiB ≈ 16 MiB), plus the native TLS buffers of the ~400 it evicted,
 * which are freed when collected and then kept by the allocator for reuse
 * (measured: +28–30 MiB in all for this flood; 12,000 evictions plateau
 * near +100 MiB, where without the fix in server.ts they grew without end).
 */
const BOUND_MIB = (MAX_HANDSHAKES * PER_STRANGER_BYTES) / 2 ** 20 + 32;

const END_MS = (3 * FAULT_TIMEOUT_S + 15) * 1000;
/** How long everyone waits for the round to gather: long, as the flood comes first. */
const JOIN_WINDOW = ["--join-timeout", "120"];

/** A process's resident and peak resident memory in bytes, from /proc (Linux). */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const status = new TextDecoder().decode(stdout);
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rss: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024 };
}

/** 2 KiB of random bytes that do not open a TLS handshake record (0x16): garbage, not TLS. */
function randomBytes(): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(2048));
  if (bytes[0] === 0x16) bytes[0] = 0x17;
  return bytes;
}

/** How many descriptors a process holds (Linux; listed by `ls`, as /proc needs --allow-all). */
async function descriptorsOf(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${pid}/fd`] }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line !== "").length;
}

/** Writes `consortium` into a fresh folder, as `sumshare certs` would. */
async function writePki(consortium: Consortium): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-outsiders-" });
  await writeConsortium(dir, consortium);
  return dir;
}

/** Resolves once the other side closed `conn` (end of input or an error), or after `ms`: false. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buffer = new Uint8Array(4096);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, ms);
  try {
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return !timedOut;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** A TLS client that presents `pair` (or no certificate) and trusts the consortium CA. */
async function tlsClient(
  port: number,
  ca: string,
  pair?: { cert: string; key: string },
): Promise<Deno.TlsConn | undefined> {
  try {
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca], ...pair });
    // TLS 1.3: the client's side of the handshake may complete before the
    // hospital has checked (and refused) the certificate.
    await conn.handshake().catch(() => {});
    return conn;
  } catch {
    return undefined; // refused during connect: just as good
  }
}

Deno.test("outsiders flood the hospital's port during an honest round: refused, memory bounded, the right sum", async () => {
  const home = await createConsortium(["hospital", "alice", "bob"]);
  const foreign = await createConsortium(["hospital", "alice"]);
  const dir = await writePki(home);
  const codeSigner = await issueCertificate(home, "alice", { usages: [CODE_SIGNING] });
  const foreignAlice = foreign.parties.get("alice")!;
  const held: Deno.Conn[] = [];
  const stopTrickle = new AbortController();
  try {
    await scenario([], async (processes: CliProcess[]) => {
      // The flood below runs while the hospital waits for its peers: on a
      // loaded machine that takes a while, and the join deadline is not
      // what this test is about, so its window is wide.
      const { hospital, address } = await startHospital(processes, dir, 2, {
        hospitalArgs: ["--timeout", String(FAULT_TIMEOUT_S * 2), ...JOIN_WINDOW],
      });
      const port = Number(address.slice(address.lastIndexOf(":") + 1));
      const pid = hospital.child.pid;
      // Warm up: the first TLS handshakes load code and build TLS state once.
      const warm = await Promise.all(
        Array.from({ length: 5 }, () => tlsClient(port, home.ca.cert)),
      );
      for (const conn of warm) if (conn) await closedWithin(conn, 10_000);
      await hospital.waitForLines(/^refused a connection from /, 5);
      const before = await memoryOf(pid);
      const fdsBefore = await descriptorsOf(pid);

      // 500 idle connections: the 244 oldest are evicted at once, the rest held.
      held.push(...await openIdle(port, 500));
      // 100 half-sent TLS records: a handshake record announcing 16 KiB, half of it sent.
      const halfRecord = new Uint8Array(5 + 8192).fill(0x01);
      halfRecord.set([0x16, 0x03, 0x01, 0x40, 0x00]);
      const halves = await openIdle(port, 100);
      await Promise.all(halves.map((conn) => conn.write(halfRecord)));
      held.push(...halves);
      // The slow client: a TLS handshake record, one byte a second.
      const slow = await Deno.connect({ hostname: "127.0.0.1", port });
      held.push(slow);
      let trickled = 0;
      const trickle = (async () => {
        const hello = [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03];
        for (const byte of hello.concat(new Array(200).fill(0x2a))) {
          if (stopTrickle.signal.aborted) return;
          await slow.write(Uint8Array.of(byte));
          trickled++;
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, 1000);
            stopTrickle.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              resolve(undefined);
            }, { once: true });
          });
        }
      })().catch(() => {});

      // Outsiders refused at once: random bytes and half-sent sumshare frames (not TLS) ...
      const notTls: Deno.Conn[] = await openIdle(port, 40);
      held.push(...notTls);
      const halfFrame = new Uint8Array(4 + 8192).fill(0x7b);
      new DataView(halfFrame.buffer).setUint32(0, 16 * 1024);
      await Promise.all(
        notTls.map((conn, i) => conn.write(i % 2 === 0 ? randomBytes() : halfFrame)),
      );
      // ... and TLS clients without a certificate, with a foreign CA's, with a codeSigning-only one.
      const tls = await Promise.all([
        ...Array.from({ length: 5 }, () => tlsClient(port, home.ca.cert)),
        ...Array.from({ length: 5 }, () => tlsClient(port, home.ca.cert, foreignAlice)),
        ...Array.from({ length: 5 }, () => tlsClient(port, home.ca.cert, codeSigner)),
      ]);
      const refusedTls = tls.filter((conn): conn is Deno.TlsConn => conn !== undefined);
      held.push(...refusedTls);
      const closed = await Promise.all(
        [...notTls, ...refusedTls].map((c) => closedWithin(c, 10_000)),
      );
      assert.equal(closed.filter((c) => !c).length, 0, "every refused outsider was closed");

      const refusal = (pattern: RegExp) =>
        hospital.stderrLines.filter((l) => /^refused a connection from /.test(l) && pattern.test(l))
          .length;
      await hospital.waitForLines(/^refused a connection from /, 5 + 244 + 40 + 15);
      // Measured while everything above is held: the hospital's peak so far,
      // and the descriptors it holds (the cap on strangers, seen from outside).
      const during = await memoryOf(pid);
      const fds = await descriptorsOf(pid);
      assert.ok(
        fds <= fdsBefore + MAX_HANDSHAKES + 10,
        `the hospital holds ${fds} descriptors (${fdsBefore} before the flood)`,
      );
      const grownMiB = (during.peak - before.rss) / 2 ** 20;
      console.log(
        `hospital RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB listening, peak ${
          (during.peak / 2 ** 20).toFixed(1)
        } MiB holding the flood: +${grownMiB.toFixed(1)} MiB (bound ${BOUND_MIB.toFixed(0)} MiB)`,
      );
      assert.ok(grownMiB < BOUND_MIB, `the hospital grew by ${grownMiB.toFixed(1)} MiB`);

      // The honest round, with every stranger above still held.
      const peerArgs = ["--timeout", String(FAULT_TIMEOUT_S), ...JOIN_WINDOW];
      startPeers(processes, dir, address, [
        ["alice", ["--value", "5", ...peerArgs]],
        ["bob", ["--value", "7", ...peerArgs]],
      ]);
      const result = resultOf(await ended(hospital, END_MS));
      assert.equal(result.sum, 12);
      assert.deepEqual(result.contributors, ["alice", "bob"]);
      for (const peer of processes.slice(1)) {
        assert.equal((await ended(peer, END_MS)).code, 0, `${peer.name} completed`);
      }

      // Each kind of outsider was refused for what it is, in one line.
      const evicted = refusal(/connections were in the TLS handshake, and it was the oldest/);
      assert.ok(evicted >= 244 + 2, `idle strangers evicted (${evicted})`);
      // Random bytes that happen to look like an SSLv2 hello are told apart as an old TLS.
      assert.equal(
        refusal(/does not speak TLS|does not offer TLS 1\.2 or 1\.3/),
        40,
        "random bytes and half frames: not TLS",
      );
      // Refused by TLS itself, before the certificate policy is asked.
      assert.equal(
        refusal(/the client presented no certificate/),
        5 + 5,
        "TLS without a certificate (and the five that warmed the hospital up)",
      );
      assert.equal(
        refusal(/the client left during the TLS handshake, or its certificate was refused/),
        10,
        "a foreign CA's certificate, a codeSigning-only one",
      );
      for (const line of hospital.stderrLines) {
        assert.ok(line.length < 400, `one short line: ${line.slice(0, 100)}…`);
        assert.doesNotMatch(line, /socket hang up|close_notify|https?:\/\/|os error|^\s+at /);
      }
      // The slow client never got anywhere: it was still trickling its first
      // record when the round started, and the hospital closed it then.
      assert.ok(trickled < 30, `the slow client sent ${trickled} bytes`);
      assert.ok(await closedWithin(slow, 10_000), "the slow client was closed by the hospital");
      stopTrickle.abort();
      await trickle;
    });
  } finally {
    stopTrickle.abort();
    for (const conn of held) closeQuietly(conn);
    await removeDir(dir);
  }
});
