/**
 * Hostile input against real processes: the hospital's port and a peer's
 * share port, attacked by outsiders (no credentials; or TLS trusting the CA
 * but no certificate) and by an authenticated insider who deviates.
 *
 * In every case the attacked process logs one clear line naming the
 * connection and why it was closed (never a stack trace), and closes the
 * connection itself (the test reads until EOF within a bounded time). Against
 * outsiders the honest round still completes with the right sum; an insider's
 * deviation aborts the round cleanly: every honest process exits 1 with a
 * reason, and the hospital prints no sum. A peer that merely leaves before
 * START is not a deviation: the round goes on without it.
 *
 * The insider is this test itself, using the project's own code
 * (`connectTls`, `clientHandshake`, `serverHandshake`, `MessageConnection`)
 * with a party "mallory" from the project's own PKI. After the handshake
 * every message is sealed (AES-GCM), so to send payloads the encoder would
 * never produce, the insider seals them with the channel its own handshake
 * derived; only a test that means to break the channel writes raw bytes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { SealedChannel } from "../lib/channel.ts";
import { P } from "../lib/field.ts";
import {
  decodeFrameLength,
  encodeFrame,
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES,
} from "../lib/frame.ts";
import { clientHandshake, expectMessage, serverHandshake } from "../lib/handshake.ts";
import { type Identity, loadIdentity, signTranscript } from "../lib/identity.ts";
import { decodeMessage, encodeMessage, type Message, type MessageOf } from "../lib/messages.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../lib/names.ts";
import { dimension, parseQuery } from "../lib/query.ts";
import {
  aggregateFields,
  HANDSHAKE_TIMEOUT_MS,
  newSessionId,
  type RoundTerms,
  vectorDigest,
} from "../lib/round.ts";
import {
  connectTls,
  listenTls,
  MessageConnection,
  type MessageListener,
} from "../lib/transport.ts";
import {
  CliProcess,
  makePki,
  scenario,
  spawnHospital as hospital,
  spawnPeer as peer,
} from "./helpers.ts";

// ---------------------------------------------------------------- processes

/** Expected failures are one line each: no stack trace, no "a bug" report. */
function assertNoStackTrace(p: CliProcess): void {
  const traces = p.stderrLines.filter((l) => /^\s+at /.test(l) || /unexpected error/.test(l));
  assert.deepEqual(traces, [], `${p.name} printed a stack trace`);
}

/** Waits for `process` to log why it closed the connection from local `port`. */
async function assertRefused(
  process: CliProcess,
  port: number,
  reason: RegExp,
  ms = 5000,
): Promise<void> {
  const line = await process.waitForLine(
    new RegExp(`^refused connection from 127\\.0\\.0\\.1:${port}: (.+)$`),
    ms,
  );
  assert.match(line[1]!, reason, `${process.name}: reason for the connection from port ${port}`);
}

/**
 * A process's resident memory from /proc/PID/status. Deno refuses to read
 * /proc/PID/* without --allow-all ("NotCapable"), even with --allow-read, so
 * this asks `cat` (the test may run programs).
 */
async function rssKiB(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(new TextDecoder().decode(stdout));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** How many file descriptors `pid` has open (via `ls`: Deno will not read /proc/PID). */
async function openFds(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${pid}/fd`] }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((l) => l !== "").length;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const encoder = new TextEncoder();

/** `text` as a literal inside a regular expression. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---------------------------------------------------------------- raw connections

interface Drained {
  /** The other side closed (EOF or reset) before our deadline. */
  closed: boolean;
  bytes: Uint8Array;
  /** Milliseconds from `started` until the other side closed (or we gave up). */
  ms: number;
}

/**
 * Reads until the other side closes, or gives up after `ms` (and then
 * closes). Closes `conn` after EOF too, unless `keepOpen`.
 */
async function drain(
  conn: Deno.Conn,
  ms: number,
  started = performance.now(),
  keepOpen = false,
): Promise<Drained> {
  const chunks: Uint8Array[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, ms);
  try {
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } catch {
    // A reset or an aborted TLS session: the server closed it (unless we timed out).
  } finally {
    clearTimeout(timer);
  }
  const elapsed = performance.now() - started;
  if (!keepOpen || timedOut) {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.length;
  }
  return { closed: !timedOut, bytes, ms: elapsed };
}

/** The whole messages in what a server sent before the channel was sealed. */
function messagesIn(bytes: Uint8Array): Message[] {
  const out: Message[] = [];
  let offset = 0;
  while (bytes.length - offset >= FRAME_HEADER_BYTES) {
    const length = decodeFrameLength(bytes.subarray(offset, offset + FRAME_HEADER_BYTES));
    offset += FRAME_HEADER_BYTES;
    if (bytes.length - offset < length) break;
    out.push(decodeMessage(bytes.subarray(offset, offset + length)));
    offset += length;
  }
  return out;
}

function jsonPayload(json: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(json));
}

function frameOf(json: unknown): Uint8Array {
  return encodeFrame(jsonPayload(json));
}

/** A message's JSON fields, to be edited into something the encoder would never write. */
function jsonOf(message: Message): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(encodeMessage(message)));
}

/** A 4-byte frame header announcing `length` bytes. */
function header(length: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(h.buffer).setUint32(0, length >>> 0);
  return h;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

async function tlsTo(address: HostPort, caPem: string): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({ ...address, caCerts: [caPem] });
  await conn.handshake();
  return conn;
}

/** A Deno TLS client connection, shaped as the byte stream a `MessageConnection` runs on. */
class TlsStream {
  readonly remote: HostPort;

  constructor(readonly conn: Deno.TlsConn) {
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remote = { hostname: addr.hostname, port: addr.port };
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.conn.read(buffer);
  }

  write(data: Uint8Array): Promise<number> {
    return this.conn.write(data);
  }

  handshake(): Promise<unknown> {
    return this.conn.handshake();
  }

  close(): void {
    this.conn.close();
  }
}

/**
 * The project's `MessageConnection` over a TLS stream the test holds. It
 * keeps the sealed channel its handshake derives, so that the test can also
 * send payloads the encoder would never produce (sealed like any message) or
 * bytes outside the channel, and it records the messages it sent.
 */
class TappedConnection extends MessageConnection {
  readonly #stream: TlsStream;
  #channel: SealedChannel | undefined;
  readonly sent: Message[] = [];

  constructor(stream: TlsStream) {
    super(stream);
    this.#stream = stream;
  }

  override secure(channel: SealedChannel): void {
    super.secure(channel);
    this.#channel = channel;
  }

  override send(message: Message, signal: AbortSignal): Promise<void> {
    this.sent.push(message);
    return super.send(message, signal);
  }

  /** Sends `payload` as the next sealed message. Only when no send is pending. */
  async sendPayload(payload: Uint8Array): Promise<void> {
    assert.ok(this.#channel, "the handshake has not sealed the connection yet");
    await this.writeRaw(encodeFrame(await this.#channel.seal(payload)));
  }

  /** Writes `bytes` as they are: no frame, no seal. */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    await writeAll(this.#stream.conn, bytes);
  }
}

async function tappedTo(address: HostPort, caPem: string): Promise<TappedConnection> {
  return new TappedConnection(new TlsStream(await tlsTo(address, caPem)));
}

// ---------------------------------------------------------------- outsiders

/** One outsider's attempt, and what the attacked process must say about it. */
interface Outcome {
  label: string;
  /** The client's local port: the server's log names it. */
  port: number;
  drained: Drained;
  /** The reason the server must log. */
  logged: RegExp;
  /** Whether the server got far enough to send `hello`, and must then send the reason in a `refuse`. */
  told?: boolean;
  /** The server must close the connection within this many milliseconds. */
  within?: number;
}

interface Target {
  /** The attacked party's name. */
  name: string;
  address: HostPort;
  caPem: string;
  /** A valid message that is not allowed before authentication on this port. */
  outOfOrder: Message;
  /** An AUTH recorded from an earlier connection to this server. */
  recordedAuth: Message;
}

/**
 * Records the AUTH `client` sends to `serverName` on a real connection, with
 * the project's own handshake (so it carries that connection's nonces and
 * ephemeral keys, and the server's WELCOME proves it was accepted there).
 * Replayed on another connection, it must be refused.
 */
async function recordAuth(
  client: Identity,
  address: HostPort,
  serverName: string,
): Promise<Message> {
  const conn = await tappedTo(address, client.caPem);
  try {
    await clientHandshake(conn, client, serverName, AbortSignal.timeout(5000));
  } finally {
    conn.close();
  }
  const auth = conn.sent[0];
  assert.equal(auth?.type, "auth");
  return auth;
}

/** After TLS, sends `bytes` and reads until the server closes. */
async function sendAfterTls(
  target: Target,
  label: string,
  bytes: Uint8Array,
  logged: RegExp,
): Promise<Outcome> {
  const conn = await tlsTo(target.address, target.caPem);
  const port = (conn.localAddr as Deno.NetAddr).port;
  await writeAll(conn, bytes);
  return { label, port, drained: await drain(conn, 5000), logged, told: true, within: 3000 };
}

/** Every outsider attack, started at once against `target`. */
function outsiderAttacks(target: Target): Promise<Outcome>[] {
  const frame = (m: Message) => encodeFrame(encodeMessage(m));
  const chunk = encodeMessage({ type: "chunk", data: Float64Array.of(1, 2) });
  const badPadding = chunk.slice();
  badPadding[3] = 1;
  return [
    (async () => {
      // Random bytes on plain TCP: not even TLS.
      const conn = await Deno.connect(target.address);
      const port = (conn.localAddr as Deno.NetAddr).port;
      const garbage = crypto.getRandomValues(new Uint8Array(4096));
      garbage[0] = 0x47; // not a TLS record type, so it cannot look like a ClientHello
      await writeAll(conn, garbage).catch(() => {});
      return {
        label: "random bytes",
        port,
        drained: await drain(conn, 5000),
        // The TLS library's reason, at once (not the handshake timeout).
        logged: /^TLS handshake failed: (?!.*timeout).*(corrupt|InvalidContentType|version)/i,
        within: 3000,
      };
    })(),
    (async () => {
      // TLS that does not trust the consortium CA: the client gives up on the chain.
      const conn = await Deno.connectTls({ ...target.address });
      const port = (conn.localAddr as Deno.NetAddr).port;
      await assert.rejects(() => conn.handshake(), /certificate|issuer|UnknownIssuer/i);
      return {
        label: "untrusting TLS",
        port,
        drained: await drain(conn, 5000),
        logged: /^TLS handshake failed: .*UnknownCA/i,
        within: 3000,
      };
    })(),
    sendAfterTls(
      target,
      "TLS then garbage",
      encoder.encode("GET / HTTP/1.1\r\nHost: sumshare\r\n\r\n"),
      new RegExp(
        `^Invalid frame: length 1195725856 exceeds the limit of ${MAX_FRAME_BYTES} bytes$`,
      ),
    ),
    sendAfterTls(
      target,
      "invalid JSON",
      encodeFrame(encoder.encode('{"v":1,"type":"auth",')),
      /^Invalid message: not UTF-8 JSON/,
    ),
    sendAfterTls(
      target,
      "unknown type",
      frameOf({ v: 1, type: "launch", from: "mallory" }),
      /^Invalid message: unknown type "launch"$/,
    ),
    sendAfterTls(
      target,
      "wrong version",
      frameOf({ ...jsonOf(target.recordedAuth), v: 2 }),
      /^Unsupported protocol version 2: this build speaks version 1$/,
    ),
    sendAfterTls(
      target,
      "out of order",
      frame(target.outOfOrder),
      new RegExp(`^Unexpected message: expected auth, got ${target.outOfOrder.type}$`),
    ),
    sendAfterTls(
      target,
      "a vector chunk instead of AUTH",
      encodeFrame(chunk),
      /^Unexpected message: expected auth, got chunk$/,
    ),
    sendAfterTls(
      target,
      "a chunk with non-zero padding",
      encodeFrame(badPadding),
      /^Invalid chunk: non-zero padding$/,
    ),
    sendAfterTls(
      target,
      "replayed AUTH",
      frame(target.recordedAuth),
      /^Invalid handshake signature from "bob"$/,
    ),
    sendAfterTls(
      target,
      "4 GiB length prefix",
      header(0xffff_ffff),
      new RegExp(
        `^Invalid frame: length 4294967295 exceeds the limit of ${MAX_FRAME_BYTES} bytes$`,
      ),
    ),
    sendAfterTls(
      target,
      "limit + 1",
      header(MAX_FRAME_BYTES + 1),
      new RegExp(`^Invalid frame: length ${MAX_FRAME_BYTES + 1} exceeds the limit`),
    ),
    sendAfterTls(target, "empty frame", header(0), /^Invalid frame: empty payload$/),
    (async () => {
      // A slow client: one byte a second of a frame that would be legal.
      const started = performance.now();
      const conn = await tlsTo(target.address, target.caPem);
      const port = (conn.localAddr as Deno.NetAddr).port;
      const bytes = frame(target.recordedAuth);
      let done = false;
      const draining = drain(conn, HANDSHAKE_TIMEOUT_MS + 5000, started).finally(() => {
        done = true;
      });
      for (const byte of bytes) {
        if (done) break;
        try {
          await conn.write(new Uint8Array([byte]));
        } catch {
          break; // closed by the server
        }
        await sleep(1000);
      }
      const drained = await draining;
      assert.ok(
        drained.ms >= HANDSHAKE_TIMEOUT_MS - 500 && drained.ms < HANDSHAKE_TIMEOUT_MS + 3000,
        `slow client cut after ${drained.ms} ms (handshake timeout ${HANDSHAKE_TIMEOUT_MS} ms)`,
      );
      return {
        label: "slow client",
        port,
        drained,
        logged: new RegExp(`^Timed out after ${HANDSHAKE_TIMEOUT_MS / 1000} s in the handshake$`),
      };
    })(),
  ];
}

/** Checks what the attacked process did with each outsider. */
async function checkOutcomes(process: CliProcess, outcomes: Outcome[]): Promise<void> {
  for (const o of outcomes) {
    const where = `${process.name}/${o.label}`;
    assert.ok(o.drained.closed, `${where}: not closed within ${o.drained.ms} ms`);
    if (o.within !== undefined) {
      assert.ok(o.drained.ms < o.within, `${where}: closed only after ${o.drained.ms} ms`);
    }
    await assertRefused(process, o.port, o.logged);
    if (o.told) {
      const messages = messagesIn(o.drained.bytes);
      assert.equal(messages[0]?.type, "hello", `${where}: the server spoke first`);
      const refusal = messages.find((m) => m.type === "refuse");
      assert.ok(refusal?.type === "refuse", `${where}: told why`);
      assert.match(refusal.reason, o.logged, `${where}: told the reason it logged`);
    }
  }
}

Deno.test("outsiders on the hospital's and a peer's port are closed with a logged reason; the round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "19", address);
    ps.push(alice);
    const shares = await alice.address();
    await h.waitForLine(/^alice joined/);
    const caPem = await Deno.readTextFile(join(dir, "ca.crt"));
    const bobId = await loadIdentity("bob", {
      ca: join(dir, "ca.crt"),
      cert: join(dir, "bob.crt"),
      key: join(dir, "bob.key"),
    });
    const [hospitalAuth, aliceAuth] = await Promise.all([
      recordAuth(bobId, parseHostPort(address), "hospital"),
      recordAuth(bobId, parseHostPort(shares), "alice"),
    ]);
    const atHospital = outsiderAttacks({
      name: "hospital",
      address: parseHostPort(address),
      caPem,
      outOfOrder: { type: "join", from: "bob", to: "hospital", address: "127.0.0.1:9" },
      recordedAuth: hospitalAuth,
    });
    const atPeer = outsiderAttacks({
      name: "alice",
      address: parseHostPort(shares),
      caPem,
      outOfOrder: {
        type: "seed",
        session: newSessionId(),
        from: "bob",
        to: "alice",
        seed: new Uint8Array(32),
      },
      recordedAuth: aliceAuth,
    });
    const [hospitalOutcomes, peerOutcomes] = await Promise.all([
      Promise.all(atHospital),
      Promise.all(atPeer),
    ]);
    await checkOutcomes(h, hospitalOutcomes);
    await checkOutcomes(alice, peerOutcomes);
    // Nobody got past the handshake, so nobody but alice joined.
    assert.equal(h.stderrLines.filter((l) => / joined from /.test(l)).length, 1);

    // Everything hostile is gone; the honest round completes.
    const bob = peer(dir, "bob", "23", address);
    ps.push(bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.deepEqual(JSON.parse(hr.stdout).participants, ["alice", "bob"]);
    assert.equal(ar.code + br.code, 0);
    for (const p of ps) assertNoStackTrace(p);
  });
});

/** Opens `count` plain TCP connections to `address` (50 at a time) and holds them. */
async function openIdle(address: string, count: number, held: Deno.Conn[]): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () => Deno.connect(parseHostPort(address))),
    );
    conns.push(...batch);
    held.push(...batch);
  }
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

/** What a server logs for a connection that never started its TLS handshake. */
const IDLE_TIMEOUT_LINE =
  /^refused connection from 127\.0\.0\.1:(\d+): TLS handshake failed: TLS handshake timeout$/;

/** Waits until `process` has logged the handshake timeout for every one of `conns`. */
async function allTimedOut(process: CliProcess, conns: Deno.Conn[], ms: number): Promise<void> {
  const ports = new Set(conns.map((c) => (c.localAddr as Deno.NetAddr).port));
  const deadline = performance.now() + ms;
  const missing = () =>
    ports.size -
    process.stderrLines.filter((l) => ports.has(Number(IDLE_TIMEOUT_LINE.exec(l)?.[1]))).length;
  while (missing() > 0 && performance.now() < deadline) await sleep(200);
  assert.equal(missing(), 0, `${process.name} gave no reason for ${missing()} idle connections`);
}

Deno.test("500 idle connections each to the hospital and a peer: bounded memory, a reason for each, the round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  const held: Deno.Conn[] = [];
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2, "--timeout", "40");
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "1000", address, "--timeout", "40");
    ps.push(alice);
    const shares = await alice.address();
    await h.waitForLine(/^alice joined/);
    await sleep(300);
    const before = { hospital: await rssKiB(h.child.pid), alice: await rssKiB(alice.child.pid) };

    // 500 idle connections to each port, held open; each is cut at the handshake deadline.
    const opened = performance.now();
    const [toHospital, toAlice] = await Promise.all([
      openIdle(address, 500, held),
      openIdle(shares, 500, held),
    ]);
    const cut = [...toHospital, ...toAlice].map((c) =>
      drain(c, HANDSHAKE_TIMEOUT_MS + 8000, opened)
    );
    await sleep(2000);
    const during = { hospital: await rssKiB(h.child.pid), alice: await rssKiB(alice.child.pid) };
    const drained = await Promise.all(cut);
    const late = drained.filter((d) => !d.closed || d.ms > HANDSHAKE_TIMEOUT_MS + 5000).length;
    assert.equal(late, 0, `${late} of 1000 idle connections not closed by the deadline`);
    await Promise.all([allTimedOut(h, toHospital, 3000), allTimedOut(alice, toAlice, 3000)]);

    // Another 500, and the round completes while they are held (all still in the handshake).
    const again = await openIdle(address, 500, held);
    await sleep(1000);
    const holding = await rssKiB(h.child.pid);
    console.log(
      `RSS KiB before / holding 500 / holding 500 again: ` +
        `hospital ${before.hospital} / ${during.hospital} / ${holding}; ` +
        `alice ${before.alice} / ${during.alice}`,
    );
    assert.ok(during.hospital - before.hospital < 150 * 1024, "hospital memory stays bounded");
    assert.ok(holding - before.hospital < 150 * 1024, "hospital memory stays bounded");
    assert.ok(during.alice - before.alice < 150 * 1024, "peer memory stays bounded");
    const bob = peer(dir, "bob", "337", address, "--timeout", "40");
    ps.push(bob);
    const [hr, ar, br] = await Promise.all([h.finish(30_000), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 1337);
    assert.equal(ar.code + br.code, 0);
    // The processes are gone, and with them every connection: nothing kept them alive.
    const rest = await Promise.all(held.splice(0).map((c) => drain(c, 5000)));
    assert.equal(rest.filter((d) => !d.closed).length, 0);
    assert.equal(again.length, 500);
    for (const p of ps) assertNoStackTrace(p);
  }).finally(() => closeAll(held));
});

Deno.test("an idle client is disconnected at the handshake deadline, and its file descriptor released", async () => {
  const dir = await makePki(["hospital", "alice"]);
  const held: Deno.Conn[] = [];
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2, "--timeout", "30");
    ps.push(h);
    const address = await h.address();
    await sleep(300);
    const fdsBefore = await openFds(h.child.pid);
    const opened = performance.now();
    const idle = await openIdle(address, 20, held);
    // Our side stays open throughout: whatever the hospital closes, it closes itself.
    const cut = idle.map((c) => drain(c, HANDSHAKE_TIMEOUT_MS + 5000, opened, true));
    await sleep(1000);
    const fdsDuring = await openFds(h.child.pid);
    assert.ok(fdsDuring >= fdsBefore + 20, `the hospital holds the 20 idle clients (${fdsDuring})`);
    const drained = await Promise.all(cut);
    const times = drained.map((d) => Math.round(d.ms));
    assert.ok(drained.every((d) => d.closed), `still open: ${times.join(", ")} ms`);
    assert.ok(
      drained.every((d) =>
        d.ms >= HANDSHAKE_TIMEOUT_MS - 500 && d.ms < HANDSHAKE_TIMEOUT_MS + 2000
      ),
      `closed after ${times.join(", ")} ms; the deadline is ${HANDSHAKE_TIMEOUT_MS} ms`,
    );
    await allTimedOut(h, idle, 2000);
    await sleep(300);
    const fdsAfter = await openFds(h.child.pid);
    console.log(
      `hospital fds: ${fdsBefore} before, ${fdsDuring} with 20 idle clients, ` +
        `${fdsAfter} after they timed out (still open on the client side)`,
    );
    assert.ok(fdsAfter <= fdsBefore + 2, `hospital holds ${fdsAfter - fdsBefore} more fds`);
  }).finally(() => closeAll(held));
});

// ---------------------------------------------------------------- insiders

type Start = MessageOf<"start">;

/** A consortium member run by the test, with the project's own client and server code. */
class Insider {
  readonly identity: Identity;
  #listener: MessageListener | undefined;
  #serving: Promise<void> | undefined;
  /** Who sent this insider a seed or share vector at its share port. */
  readonly sharesFrom: string[] = [];

  constructor(identity: Identity) {
    this.identity = identity;
  }

  static async load(dir: string, name: string): Promise<Insider> {
    return new Insider(
      await loadIdentity(name, {
        ca: join(dir, "ca.crt"),
        cert: join(dir, `${name}.crt`),
        key: join(dir, `${name}.key`),
      }),
    );
  }

  /** Connects and authenticates as an honest client would (`connectTls`, `clientHandshake`). */
  async connect(address: HostPort, serverName: string): Promise<MessageConnection> {
    const signal = AbortSignal.timeout(10_000);
    const conn = await connectTls(address, this.identity.caPem, signal);
    await clientHandshake(conn, this.identity, serverName, signal);
    return conn;
  }

  /** Like {@linkcode connect}, on a connection that can also send what the encoder would not. */
  async connectRaw(address: HostPort, serverName: string): Promise<TappedConnection> {
    const conn = await tappedTo(address, this.identity.caPem);
    await clientHandshake(conn, this.identity, serverName, AbortSignal.timeout(10_000));
    return conn;
  }

  /** Listens for shares like an honest peer: authenticate, take the seed or vector, ACK. */
  async serveShares(): Promise<string> {
    const listener = await listenTls(
      { hostname: "127.0.0.1", port: 0 },
      this.identity.certPem,
      this.identity.keyPem,
      { handshakeTimeoutMs: 10_000 },
    );
    this.#listener = listener;
    this.#serving = (async () => {
      const tasks: Promise<void>[] = [];
      for await (const conn of listener.accept()) {
        tasks.push((async () => {
          const signal = AbortSignal.timeout(10_000);
          try {
            await conn.handshake(signal);
            const party = await serverHandshake(conn, this.identity, signal);
            const share = await conn.receive(signal);
            if (share.type === "share") await conn.receiveVector(share.length, signal);
            else if (share.type !== "seed") return;
            this.sharesFrom.push(party.name);
            await conn.send(
              { type: "ack", session: share.session, from: this.identity.name, to: party.name },
              signal,
            );
          } catch {
            // The round is being torn down.
          } finally {
            conn.close();
          }
        })());
      }
      await Promise.allSettled(tasks);
    })();
    return formatHostPort(listener.address);
  }

  /** Joins the hospital's round; returns the connection (START not yet read). */
  async join(hospital: HostPort, shares: string): Promise<TappedConnection> {
    const conn = await this.connectRaw(hospital, "hospital");
    await conn.send(
      { type: "join", from: this.identity.name, to: "hospital", address: shares },
      sendTimeout(),
    );
    return conn;
  }

  /**
   * An AGG header for `partial` under `terms`, signed as the protocol asks
   * (or over `signed`, a vector other than the one it announces).
   */
  async agg(
    terms: RoundTerms,
    partial: Float64Array,
    signed = partial,
  ): Promise<MessageOf<"agg">> {
    const digest = await vectorDigest(signed);
    const fields = aggregateFields(terms, this.identity.name, "hospital", signed.length, digest);
    return {
      type: "agg",
      session: terms.session,
      from: this.identity.name,
      to: "hospital",
      contributors: [...terms.contributors],
      length: partial.length,
      sig: await signTranscript(this.identity.privateKey, "aggregate", fields),
    };
  }

  async close(): Promise<void> {
    this.#listener?.close();
    await this.#serving;
  }
}

const sendTimeout = () => AbortSignal.timeout(5000);

/** The terms a partial sum's signature covers, from START (optionally under another session). */
function termsOf(start: Start, session = start.session): RoundTerms {
  const names = start.participants.map((p) => p.name);
  return {
    session,
    mode: start.mode,
    threshold: start.threshold,
    query: start.query,
    scale: start.scale,
    participants: names,
    contributors: names,
  };
}

/** A vector of the round's dimension, every element `value`. */
function vectorFor(start: Start, value = 7): Float64Array {
  return new Float64Array(dimension(parseQuery(start.query, start.scale))).fill(value);
}

/** Sends an AGG header and its vector; the vector may meet a connection already closed. */
async function sendAgg(
  conn: MessageConnection,
  agg: MessageOf<"agg">,
  partial: Float64Array,
): Promise<void> {
  await conn.send(agg, sendTimeout());
  await conn.sendVector(partial, sendTimeout()).catch(() => {});
}

/** Reads what the server still sends, until it closes the connection; bounded by `ms`. */
async function readUntilClosed(
  conn: MessageConnection,
  ms: number,
): Promise<{ messages: Message[]; closed: boolean }> {
  const messages: Message[] = [];
  const signal = AbortSignal.timeout(ms);
  for (;;) {
    try {
      messages.push(await conn.receive(signal));
    } catch {
      conn.close();
      return { messages, closed: !signal.aborted };
    }
  }
}

/**
 * Every honest process exits 1 with a reason and no stack trace; the hospital
 * prints no sum and names the cause (`culprit`), and each peer named in
 * `reasons` gives that reason.
 */
async function assertCleanAbort(
  processes: CliProcess[],
  culprit: RegExp,
  reasons: Record<string, RegExp> = {},
  ms = 20_000,
): Promise<void> {
  const results = await Promise.all(processes.map((p) => p.finish(ms)));
  for (const [i, r] of results.entries()) {
    const p = processes[i]!;
    assert.equal(r.code, 1, `${p.name} exits 1`);
    assert.match(r.stderr, /round aborted: \S/, `${p.name} says why`);
    assertNoStackTrace(p);
    if (p.name === "hospital") {
      assert.equal(r.stdout, "", "the hospital prints no sum");
      assert.match(r.stderr, culprit, "the hospital names the cause");
    }
    const reason = reasons[p.name];
    if (reason) assert.match(r.stderr, reason, `${p.name}'s reason`);
  }
}

interface HospitalDeviation {
  label: string;
  /** Whether mallory waits for START before deviating. */
  afterStart: boolean;
  act(mallory: Insider, conn: TappedConnection, start?: Start): Promise<void>;
  /** The hospital's reason for aborting: what mallory did. */
  reason: RegExp;
}

const HOSPITAL_DEVIATIONS: HospitalDeviation[] = [
  {
    label: "sends its partial sum before START (as the last to join)",
    afterStart: false,
    act: async (m, conn) => {
      const partial = Float64Array.of(7);
      const terms: RoundTerms = {
        session: newSessionId(),
        mode: "additive",
        threshold: 2,
        query: "sum",
        scale: 0,
        participants: ["alice", "mallory"],
        contributors: ["alice", "mallory"],
      };
      await sendAgg(conn, await m.agg(terms, partial), partial);
    },
    reason: /agg is for another session/,
  },
  {
    label: "replays a partial sum signed for an earlier session",
    afterStart: true,
    act: async (m, conn, start) => {
      const partial = vectorFor(start!);
      await sendAgg(conn, await m.agg(termsOf(start!, newSessionId()), partial), partial);
    },
    reason: /agg is for another session/,
  },
  {
    label: "sends a partial sum that claims to be from alice",
    afterStart: true,
    act: async (m, conn, start) => {
      const partial = vectorFor(start!);
      const agg = await m.agg(termsOf(start!), partial);
      await sendAgg(conn, { ...agg, from: "alice" }, partial);
    },
    reason: /agg names the wrong sender or recipient/,
  },
  {
    label: "sends a partial sum over another contributor set",
    afterStart: true,
    act: async (m, conn, start) => {
      const partial = vectorFor(start!);
      const agg = await m.agg({ ...termsOf(start!), contributors: ["mallory"] }, partial);
      await sendAgg(conn, agg, partial);
    },
    reason: /Partial sum is over another contributor set/,
  },
  {
    label: "sends a partial sum of the wrong length",
    afterStart: true,
    act: async (m, conn, start) => {
      const partial = new Float64Array(vectorFor(start!).length + 4);
      await sendAgg(conn, await m.agg(termsOf(start!), partial), partial);
    },
    reason: /Partial sum of 5 elements; the query has 1/,
  },
  {
    label: "sends a partial sum other than the one it signed",
    afterStart: true,
    act: async (m, conn, start) => {
      const partial = vectorFor(start!, 7);
      const agg = await m.agg(termsOf(start!), partial, vectorFor(start!, 8));
      await sendAgg(conn, agg, partial);
    },
    reason: /Invalid signature on partial sum/,
  },
  {
    label: "joins a second time after START (out of order)",
    afterStart: true,
    act: async (_m, conn) =>
      await conn.send(
        { type: "join", from: "mallory", to: "hospital", address: "127.0.0.1:9" },
        sendTimeout(),
      ),
    reason: /Unexpected join message/,
  },
  {
    label: "sends a vector chunk outside a vector",
    afterStart: true,
    act: async (_m, conn) =>
      await conn.send({ type: "chunk", data: Float64Array.of(1) }, sendTimeout()),
    reason: /Unexpected chunk message/,
  },
  {
    label: "sends a frame that is not JSON",
    afterStart: true,
    act: async (_m, conn) => await conn.sendPayload(encoder.encode("{{{{")),
    reason: /Invalid message: not UTF-8 JSON/,
  },
  {
    label: "sends an unknown message type",
    afterStart: true,
    act: async (_m, conn) =>
      await conn.sendPayload(jsonPayload({ v: 1, type: "result", from: "mallory", sum: "1" })),
    reason: /Invalid message: unknown type "result"/,
  },
  {
    label: "speaks protocol version 2",
    afterStart: true,
    act: async (m, conn, start) => {
      const agg = await m.agg(termsOf(start!), vectorFor(start!));
      await conn.sendPayload(jsonPayload({ ...jsonOf(agg), v: 2 }));
    },
    reason: /Unsupported protocol version 2/,
  },
  {
    label: "sends a 4 GiB length prefix",
    afterStart: true,
    act: async (_m, conn) => await conn.writeRaw(header(0xffff_ffff)),
    reason: new RegExp(
      `Invalid frame: length 4294967295 exceeds the limit of ${MAX_FRAME_BYTES} bytes`,
    ),
  },
  {
    label: "sends a message outside the sealed channel",
    afterStart: true,
    act: async (m, conn, start) => {
      const agg = await m.agg(termsOf(start!), vectorFor(start!));
      await conn.writeRaw(encodeFrame(encodeMessage(agg)));
    },
    reason: /Message failed authentication/,
  },
];

for (const deviation of HOSPITAL_DEVIATIONS) {
  Deno.test(`an insider who ${deviation.label} makes the round abort cleanly`, async () => {
    const dir = await makePki(["hospital", "alice", "mallory"]);
    const mallory = await Insider.load(dir, "mallory");
    await scenario([dir], async (ps) => {
      const h = hospital(dir, 2, "--timeout", "10");
      ps.push(h);
      const address = await h.address();
      const alice = peer(dir, "alice", "5", address, "--timeout", "10");
      ps.push(alice);
      await h.waitForLine(/^alice joined/);
      const conn = await mallory.join(parseHostPort(address), await mallory.serveShares());
      let start: Start | undefined;
      if (deviation.afterStart) start = await expectMessage(conn, "start", sendTimeout());
      await deviation.act(mallory, conn, start);
      const seen = await readUntilClosed(conn, 10_000);
      assert.ok(seen.closed, "the hospital closed mallory's connection");
      const cause = `mallory broke the protocol: ${deviation.reason.source}`;
      await assertCleanAbort([h, alice], new RegExp(`round aborted: ${cause}`), {
        alice: new RegExp(`round aborted: hospital aborted the round: ${cause}`),
      });
      // Mallory was cut off (or told the round is over); never sent a DONE.
      assert.ok(!seen.messages.some((m) => m.type === "done"));
    }).finally(() => mallory.close());
  });
}

Deno.test("an insider who sends a partial sum while peers are still joining makes the round abort cleanly", async () => {
  const dir = await makePki(["hospital", "alice", "mallory"]);
  const mallory = await Insider.load(dir, "mallory");
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 3, "--timeout", "10");
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "5", address, "--timeout", "10");
    ps.push(alice);
    await h.waitForLine(/^alice joined/);
    // Mallory joins second of three: the round has not started, and cannot yet.
    const conn = await mallory.join(parseHostPort(address), "127.0.0.1:9");
    await h.waitForLine(/^mallory joined/);
    const partial = Float64Array.of(7);
    const terms: RoundTerms = {
      session: newSessionId(),
      mode: "additive",
      threshold: 3,
      query: "sum",
      scale: 0,
      participants: ["alice", "bob", "mallory"],
      contributors: ["alice", "bob", "mallory"],
    };
    await sendAgg(conn, await mallory.agg(terms, partial), partial);
    const seen = await readUntilClosed(conn, 5000);
    assert.ok(seen.closed, "the hospital closed mallory's connection");
    const culprit = "mallory broke the protocol: Unexpected agg message";
    await assertCleanAbort([h, alice], new RegExp(`round aborted: ${culprit}`), {
      alice: new RegExp(`round aborted: hospital aborted the round: ${culprit}`),
    });
    assert.ok(!h.stderrLines.some((l) => /^starting session/.test(l)), "no round was started");
  }).finally(() => mallory.close());
});

Deno.test("a peer that disconnects or withdraws before START just leaves; the round completes without it", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "mallory"]);
  const mallory = await Insider.load(dir, "mallory");
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = parseHostPort(await h.address());
    const first = await mallory.join(address, "127.0.0.1:9");
    await h.waitForLine(/^mallory joined/);
    first.close();
    await h.waitForLine(/^mallory left before the round started: Connection closed by the other/);
    const second = await mallory.join(address, "127.0.0.1:9");
    await h.waitForLines(/^mallory joined/, 2);
    await second.send(
      { type: "abort", session: null, from: "mallory", to: "hospital", reason: "changed my mind" },
      sendTimeout(),
    );
    assert.ok((await readUntilClosed(second, 5000)).closed);
    await h.waitForLine(/^mallory left before the round started: changed my mind$/);
    const alice = peer(dir, "alice", "30", formatHostPort(address));
    const bob = peer(dir, "bob", "12", formatHostPort(address));
    ps.push(alice, bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.deepEqual(JSON.parse(hr.stdout).participants, ["alice", "bob"]);
    assert.equal(ar.code + br.code, 0);
    for (const p of ps) assertNoStackTrace(p);
  }).finally(() => mallory.close());
});

interface PeerDeviation {
  label: string;
  /** Sharing mode of the round. */
  mode: "additive" | "threshold";
  /** The honest peer mallory deviates against: alice is below her by name, zoe above. */
  target: "alice" | "zoe";
  /** Mallory's connection(s) to the target's share port, misbehaving; what the target said. */
  act(mallory: Insider, target: HostPort, start: Start): Promise<{ messages: Message[] }>;
  /** The target's reason for aborting. */
  reason: RegExp;
}

/**
 * Mallory authenticates to `target`'s share port, sends what `send` does,
 * and reads until the target closes the connection.
 */
async function shareConnection(
  mallory: Insider,
  target: HostPort,
  targetName: string,
  send: (conn: TappedConnection) => Promise<void>,
): Promise<{ messages: Message[] }> {
  const conn = await mallory.connectRaw(target, targetName);
  await send(conn);
  const seen = await readUntilClosed(conn, 10_000);
  assert.ok(seen.closed, `${targetName} closed mallory's connection`);
  return seen;
}

/** A seed message from mallory under `start`, with `changes` applied. */
function seedMessage(start: Start, to: string, changes: Partial<MessageOf<"seed">> = {}): Message {
  return {
    type: "seed",
    session: start.session,
    from: "mallory",
    to,
    seed: crypto.getRandomValues(new Uint8Array(32)),
    ...changes,
  };
}

/** Sends `message` as the only message of a share connection. */
function sendOne(mallory: Insider, target: HostPort, name: string, message: Message) {
  return shareConnection(mallory, target, name, (conn) => conn.send(message, sendTimeout()));
}

/** Sends a SHARE header announcing `length` elements, then `vector`. */
function sendVector(
  mallory: Insider,
  target: HostPort,
  name: string,
  start: Start,
  length: number,
  vector: Float64Array,
) {
  return shareConnection(mallory, target, name, async (conn) => {
    await conn.send(
      { type: "share", session: start.session, from: "mallory", to: name, length },
      sendTimeout(),
    );
    await conn.sendVector(vector, sendTimeout()).catch(() => {});
  });
}

const PEER_DEVIATIONS: PeerDeviation[] = [
  {
    label: "sends zoe a seed addressed to alice",
    mode: "additive",
    target: "zoe",
    act: (m, zoe, start) => sendOne(m, zoe, "zoe", seedMessage(start, "zoe", { to: "alice" })),
    reason: /Share names the wrong sender or recipient/,
  },
  {
    label: "sends zoe a seed that claims to be from alice",
    mode: "additive",
    target: "zoe",
    act: (m, zoe, start) => sendOne(m, zoe, "zoe", seedMessage(start, "zoe", { from: "alice" })),
    reason: /Share names the wrong sender or recipient/,
  },
  {
    label: "replays a seed from an earlier session",
    mode: "additive",
    target: "zoe",
    act: (m, zoe, start) =>
      sendOne(m, zoe, "zoe", seedMessage(start, "zoe", { session: newSessionId() })),
    reason: /Share is for another session/,
  },
  {
    label: "sends zoe its seed twice within the session",
    mode: "additive",
    target: "zoe",
    act: async (m, zoe, start) => {
      const seed = seedMessage(start, "zoe");
      const first = await sendOne(m, zoe, "zoe", seed);
      assert.equal(first.messages[0]?.type, "ack", "the first seed is taken");
      return await sendOne(m, zoe, "zoe", seed);
    },
    reason: /Second share from the same sender/,
  },
  {
    label: "sends alice a seed though only the lower-named of a pair may",
    mode: "additive",
    target: "alice",
    act: (m, alice, start) => sendOne(m, alice, "alice", seedMessage(start, "alice")),
    reason: /A seed from a higher-named peer/,
  },
  {
    label: "sends zoe a share vector in an additive round",
    mode: "additive",
    target: "zoe",
    act: (m, zoe, start) => sendVector(m, zoe, "zoe", start, 1, Float64Array.of(3)),
    reason: /A share vector in an additive round/,
  },
  {
    label: "opens its share connection with a frame that is not JSON",
    mode: "additive",
    target: "zoe",
    act: (m, zoe) =>
      shareConnection(m, zoe, "zoe", (conn) => conn.sendPayload(encoder.encode("{{{{"))),
    reason: /Invalid message: not UTF-8 JSON/,
  },
  {
    label: "opens its share connection with a message of another type",
    mode: "additive",
    target: "zoe",
    act: (m, zoe) =>
      sendOne(m, zoe, "zoe", {
        type: "join",
        from: "mallory",
        to: "zoe",
        address: "127.0.0.1:9",
      }),
    reason: /Unexpected join message/,
  },
  {
    label: "sends zoe a share vector with an element outside the field",
    mode: "threshold",
    target: "zoe",
    act: (m, zoe, start) => sendVector(m, zoe, "zoe", start, 1, Float64Array.of(P)),
    reason: /Invalid chunk: an element is not a field element/,
  },
  {
    label: "sends zoe a share of the wrong length",
    mode: "threshold",
    target: "zoe",
    act: (m, zoe, start) => sendVector(m, zoe, "zoe", start, 5, new Float64Array(5)),
    reason: /Share of 5 elements; the query has 1/,
  },
  {
    label: "sends zoe a seed in a threshold round",
    mode: "threshold",
    target: "zoe",
    act: (m, zoe, start) => sendOne(m, zoe, "zoe", seedMessage(start, "zoe")),
    reason: /A seed in a threshold round/,
  },
];

/**
 * The round of a peer-port deviation: alice and zoe are honest, mallory joins
 * last (so START follows at once); 3 peers, threshold 2 in threshold mode.
 */
async function peerRound(dir: string, ps: CliProcess[], mode: "additive" | "threshold") {
  const modeArgs = mode === "threshold" ? ["--threshold", "2"] : [];
  const h = hospital(dir, 3, "--timeout", "10", ...modeArgs);
  ps.push(h);
  const address = await h.address();
  const alice = peer(dir, "alice", "5", address, "--timeout", "10");
  const zoe = peer(dir, "zoe", "6", address, "--timeout", "10");
  ps.push(alice, zoe);
  await h.waitForLine(/^alice joined/);
  await h.waitForLine(/^zoe joined/);
  return { h, alice, zoe, address: parseHostPort(address) };
}

for (const deviation of PEER_DEVIATIONS) {
  Deno.test(`an insider who ${deviation.label} makes the round abort cleanly`, async () => {
    const dir = await makePki(["hospital", "alice", "mallory", "zoe"]);
    const mallory = await Insider.load(dir, "mallory");
    await scenario([dir], async (ps) => {
      const { h, alice, zoe, address } = await peerRound(dir, ps, deviation.mode);
      const conn = await mallory.join(address, await mallory.serveShares());
      const start = await expectMessage(conn, "start", sendTimeout());
      assert.equal(start.mode, deviation.mode);
      const listed = start.participants.find((p) => p.name === deviation.target)!;
      const seen = await deviation.act(mallory, parseHostPort(listed.address), start);
      const refusal = seen.messages.find((m) => m.type === "refuse");
      assert.ok(refusal?.type === "refuse", `${deviation.target} tells mallory why`);
      assert.match(refusal.reason, deviation.reason);
      const target = deviation.target === "alice" ? alice : zoe;
      const cause = `bad share from mallory: ${deviation.reason.source}`;
      await target.waitForLine(new RegExp(`^sumshare peer: round aborted: ${cause}`), 10_000);
      await assertCleanAbort(
        [h, alice, zoe],
        new RegExp(`round aborted: ${deviation.target} aborted the round: ${cause}`),
      );
      await readUntilClosed(conn, 5000);
    }).finally(() => mallory.close());
  });
}

Deno.test("an insider whose malformed first message reaches a peer before START makes the round abort once START arrives", async () => {
  const dir = await makePki(["hospital", "alice", "mallory", "zoe"]);
  const mallory = await Insider.load(dir, "mallory");
  await scenario([dir], async (ps) => {
    const { h, alice, zoe, address } = await peerRound(dir, ps, "additive");
    // Mallory finds zoe's share port before the round starts, and opens with garbage.
    const early = await mallory.connectRaw(parseHostPort(await zoe.address()), "zoe");
    await early.sendPayload(encoder.encode("{{{{"));
    await sleep(300);
    assert.ok(!zoe.stderrLines.some((l) => /refused|aborted/.test(l)), "zoe waits for START");
    const conn = await mallory.join(address, await mallory.serveShares());
    await expectMessage(conn, "start", sendTimeout());
    const seen = await readUntilClosed(early, 10_000);
    assert.ok(seen.closed, "zoe closed mallory's connection");
    const refusal = seen.messages.find((m) => m.type === "refuse");
    assert.ok(refusal?.type === "refuse", "zoe tells mallory why");
    assert.match(refusal.reason, /Invalid message: not UTF-8 JSON/);
    const cause = "bad share from mallory: Invalid message: not UTF-8 JSON";
    await assertCleanAbort(
      [h, alice, zoe],
      new RegExp(`round aborted: zoe aborted the round: ${cause}`),
      {
        zoe: new RegExp(`^sumshare peer: round aborted: ${cause}`, "m"),
      },
    );
    await readUntilClosed(conn, 5000);
  }).finally(() => mallory.close());
});

Deno.test("a consortium member outside the round is refused at a peer's share port; the round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "eve"]);
  const eve = await Insider.load(dir, "eve");
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "40", address);
    ps.push(alice);
    const shares = parseHostPort(await alice.address());
    await h.waitForLine(/^alice joined/);
    // Eve authenticates (her certificate is good) and offers a seed; alice
    // holds it until START shows eve is not a participant, then refuses it.
    const conn = await eve.connect(shares, "alice");
    await conn.send(
      {
        type: "seed",
        session: newSessionId(),
        from: "eve",
        to: "alice",
        seed: new Uint8Array(32),
      },
      sendTimeout(),
    );
    const bob = peer(dir, "bob", "2", address);
    ps.push(bob);
    const seen = await readUntilClosed(conn, 10_000);
    assert.ok(seen.closed);
    await alice.waitForLine(
      /^refused connection from 127\.0\.0\.1:\d+: eve is not a participant of this round$/,
    );
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.equal(ar.code + br.code, 0);
    for (const p of ps) assertNoStackTrace(p);
  }).finally(() => eve.close());
});

Deno.test("an outsider cannot forge lines in the hospital's log", async () => {
  const dir = await makePki(["hospital", "alice"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2, "--timeout", "3");
    ps.push(h);
    const address = parseHostPort(await h.address());
    const caPem = await Deno.readTextFile(join(dir, "ca.crt"));
    const forged = "FORGED alice joined from 127.0.0.1:1, shares at 127.0.0.1:1 (1/2)";
    const attempts = [
      // An unknown field whose name carries a line break, echoed in the decoder's error.
      frameOf({ v: 1, type: "auth", [`x\n${forged}`]: 1 }),
      // A `refuse` from the client: its reason is the client's own text.
      frameOf({ v: 1, type: "refuse", reason: `no\n${forged}` }),
      frameOf({ v: 1, type: "refuse", reason: `no\r\u2028${forged}` }),
      // A long reason full of line breaks.
      frameOf({ v: 1, type: "refuse", reason: `\n${forged}`.repeat(14).slice(0, 1000) }),
      // A flood: a 400 KB version field, echoed in the decoder's error.
      frameOf({ v: "A".repeat(400_000), type: "auth" }),
    ];
    const conns = await Promise.all(attempts.map(() => tlsTo(address, caPem)));
    const ports = conns.map((c) => (c.localAddr as Deno.NetAddr).port);
    await Promise.all(conns.map((c, i) => writeAll(c, attempts[i]!)));
    const drained = await Promise.all(conns.map((c) => drain(c, 5000)));
    assert.ok(drained.every((d) => d.closed));
    // One line per attempt, with the attacker's line breaks escaped.
    await assertRefused(
      h,
      ports[0]!,
      new RegExp(`^Invalid message: auth\\["x\\\\n${literal(forged.slice(0, 20))}`),
    );
    await assertRefused(h, ports[1]!, new RegExp(`^Refused: no\\\\u000a${literal(forged)}$`));
    await assertRefused(
      h,
      ports[2]!,
      new RegExp(`^Refused: no\\\\u000d\\\\u2028${literal(forged)}$`),
    );
    await assertRefused(h, ports[3]!, /^Refused: (\\u000aFORGED [^\n]*){3}/);
    await assertRefused(h, ports[4]!, /^Unsupported protocol version "A{20}/);
    const r = await h.finish();
    assert.equal(r.code, 1);
    const forgedLines = h.stderrLines.filter((l) => l.startsWith("FORGED"));
    assert.deepEqual(forgedLines, [], "a client wrote its own lines into the hospital's log");
    const long = h.stderrLines.filter((l) => l.length > 400);
    assert.deepEqual(long, [], "every log line is short");
  });
});
