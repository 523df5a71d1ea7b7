/**
 * Hostile input against the star hospital, as real processes:
 * - outsiders on the hospital's port (random bytes, an oversized length
 *   prefix, a plain TCP client that says nothing, TLS without a client
 *   certificate, a peer process whose certificate is from another CA) are
 *   refused with a logged reason, and the honest round still completes
 *   with the right sum;
 * - an authenticated insider (a consortium peer using lib/net/client.ts
 *   `connect` and lib/wire/messages.ts) that sends what the protocol forbids
 *   (an oversized first frame, a JOIN with a bad signature, a second JOIN, a
 *   chunk before its INPUT) is dropped or the round aborts cleanly, never a
 *   wrong sum.
 *
 * The full hostile suite (foreign CAs, key usages, idle floods, slow
 * clients, sealed-share attacks) is issue 9's.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { generateSessionKeys } from "../lib/crypto/agreement.ts";
import { sign } from "../lib/crypto/signing.ts";
import { type Identity, loadIdentity } from "../lib/identity.ts";
import { connect } from "../lib/net/client.ts";
import type { Connection } from "../lib/net/connection.ts";
import { confirmFields, joinFields, startHash } from "../lib/protocol/transcript.ts";
import { PRE_AUTH_FRAME_LIMIT as PRE_AUTH_LIMIT } from "../lib/wire/frame.ts";
import {
  decodePayload,
  encodeChunk,
  encodeMessage,
  type Message,
  type MessageOf,
} from "../lib/wire/messages.ts";
import { type CliProcess, makePki, scenario, spawnPeer } from "./helpers.ts";
import {
  assertCleanAbort,
  ended,
  FAULT_TIMEOUT_S,
  resultOf,
  type StarRound,
  startRound,
} from "./star_helpers.ts";

const END_MS = (3 * FAULT_TIMEOUT_S + 15) * 1000;

/** Whether a TCP client's stream ends (closed by the other side) within `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buffer = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      if ((await conn.read(buffer)) === null) return true;
    }
  } catch {
    // Closed by the timer (still open after `ms`) or reset by the peer.
    return false;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("outsiders on the hospital's port are refused with a reason; the honest round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  // Another consortium with a party of the same name.
  const foreign = await makePki(["hospital", "alice"]);
  const sockets: Deno.Conn[] = [];
  try {
    await scenario([dir, foreign], async (processes: CliProcess[]) => {
      // No peer yet: the outsiders come first.
      const round = await startRound(processes, dir, {}, { peers: 2 });
      const [hostname, port] = [
        round.address.slice(0, round.address.lastIndexOf(":")),
        Number(round.address.slice(round.address.lastIndexOf(":") + 1)),
      ];
      const refusals = () =>
        round.hospital.stderrLines.filter((l) => /^refused a connection from /.test(l)).length;

      const garbage = await Deno.connect({ hostname, port });
      sockets.push(garbage);
      await garbage.write(crypto.getRandomValues(new Uint8Array(2048)));
      assert.ok(
        await closedWithin(garbage, 10_000),
        "random bytes: the hospital closed the socket",
      );

      const oversized = await Deno.connect({ hostname, port });
      sockets.push(oversized);
      await oversized.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01));
      assert.ok(await closedWithin(oversized, 10_000), "a 4 GiB length: closed");

      // A plain TCP client that sends nothing is not served either: its
      // socket is closed at the handshake deadline, or at the latest when
      // the round ends (it never holds a peer's place).
      const silent = await Deno.connect({ hostname, port });
      sockets.push(silent);

      const noCert = await Deno.connectTls({
        hostname,
        port,
        caCerts: [await Deno.readTextFile(join(dir, "ca.crt"))],
      });
      sockets.push(noCert);
      // The handshake may complete on the client's side (TLS 1.3 sends the
      // client's empty certificate last); the hospital then closes it.
      const handshake = await noCert.handshake().then(() => "done", (e) => String(e));
      if (handshake === "done") {
        const closed = await noCert.read(new Uint8Array(16)).then((n) => n === null, () => true);
        assert.ok(closed, "TLS without a certificate: the hospital closed it");
      }
      const started = performance.now();
      while (refusals() < 3 && performance.now() - started < 10_000) {
        await round.hospital.waitForLine(/^refused a connection from /, 10_000).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(refusals() >= 3, `three refusals logged, saw ${refusals()}`);

      // A real peer whose certificate comes from another CA: refused, and
      // the peer ends with a reason that points at its certificate.
      const stranger = spawnPeer(foreign, "alice", "1000", round.address, "--timeout", "5");
      processes.push(stranger);
      const refused = await ended(stranger, END_MS);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /^sumshare peer: .*certificate/m);
      assert.doesNotMatch(refused.stderr, /a bug|^\s+at /m);
      await round.hospital.waitForLines(/^refused a connection from /, 4);

      const address = round.address;
      for (const [name, value] of [["alice", "5"], ["bob", "7"]] as const) {
        processes.push(spawnPeer(dir, name, value, address, "--timeout", String(FAULT_TIMEOUT_S)));
      }
      const result = resultOf(await ended(round.hospital, END_MS));
      assert.equal(result.sum, 12);
      assert.deepEqual(result.contributors, ["alice", "bob"]);
      // No outsider's text reached the log raw: every refusal is one short line.
      for (const line of round.hospital.stderrLines) assert.ok(line.length < 400, line);
    });
  } finally {
    for (const s of sockets) {
      try {
        s.close();
      } catch {
        // Already closed.
      }
    }
  }
});

/** A consortium member speaking the wire protocol by hand. */
class Insider {
  readonly identity: Identity;
  readonly conn: Connection;
  readonly #stop = new AbortController();

  private constructor(identity: Identity, conn: Connection) {
    this.identity = identity;
    this.conn = conn;
  }

  static async connect(dir: string, name: string, address: string): Promise<Insider> {
    const identity = await loadIdentity(name, {
      ca: join(dir, "ca.crt"),
      cert: join(dir, `${name}.crt`),
      key: join(dir, `${name}.key`),
    });
    const colon = address.lastIndexOf(":");
    const conn = await connect({
      hostname: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      ca: identity.caPem,
      cert: identity.certPem,
      key: identity.keyPem,
    }, AbortSignal.timeout(10_000));
    return new Insider(identity, conn);
  }

  send(message: Message): Promise<void> {
    return this.conn.write(encodeMessage(message), AbortSignal.timeout(10_000));
  }

  /** The next message of `type`, failing after 20 s. */
  async expect<T extends Message["type"]>(type: T): Promise<MessageOf<T>> {
    const signal = AbortSignal.timeout(20_000);
    for (;;) {
      const decoded = decodePayload(await this.conn.readFrame(signal));
      if (decoded.kind === "message" && decoded.message.type === type) {
        this.conn.raiseLimit();
        return decoded.message as unknown as MessageOf<T>;
      }
    }
  }

  /** An honest JOIN for `session`, optionally with its signature spoiled. */
  async join(session: string, options: { badSignature?: boolean } = {}): Promise<Message> {
    const keys = await generateSessionKeys();
    const signature = await sign(
      this.identity.privateKey,
      "join",
      joinFields(session, this.identity.name, keys.seal.publicKey, keys.mask.publicKey),
    );
    if (options.badSignature) signature[10]! ^= 0x01;
    return {
      type: "join",
      session,
      sealKey: keys.seal.publicKey,
      maskKey: keys.mask.publicKey,
      signature,
    };
  }

  close(): void {
    this.#stop.abort();
    this.conn.close();
  }
}

interface Deviation {
  label: string;
  /** The modes to try it in: n-of-n aborts cleanly, threshold drops the insider and finishes. */
  modes: ("nofn" | "threshold")[];
  /** The hospital's line saying why it dropped the insider, as the protocol says. */
  reason: RegExp;
  /** What the insider does once connected. */
  act(insider: Insider, round: StarRound): Promise<void>;
}

const DEVIATIONS: Deviation[] = [
  {
    label: "opens with a frame longer than the limit before its first message",
    modes: ["nofn"],
    reason:
      /^mallory: Cannot read frame: a payload of 16385 bytes exceeds the limit of 16384 bytes$/,
    act: async (m) => {
      await m.expect("invite");
      // 16 KiB + 1: over the limit the hospital holds a party to before its
      // first message (our own side's limit is raised, so it goes out).
      m.conn.raiseLimit();
      await m.conn.write(new Uint8Array(PRE_AUTH_LIMIT + 1).fill(0x20), AbortSignal.timeout(10_000))
        .catch(() => {});
    },
  },
  {
    label: "sends a JOIN with a bad signature",
    modes: ["nofn", "threshold"],
    reason: /^dropped mallory: its join signature does not verify$/,
    act: async (m) => {
      const invite = await m.expect("invite");
      await m.send(await m.join(invite.session, { badSignature: true }));
    },
  },
  {
    label: "sends a second JOIN",
    modes: ["threshold"],
    reason: /^dropped mallory: second join$/,
    act: async (m, round) => {
      // Alice stopped before she can answer the invitation: the JOIN phase
      // stays open while mallory sends twice.
      const alice = round.peers.get("alice")!;
      await alice.waitForLine(/^connected to the hospital at /);
      alice.kill("SIGSTOP");
      const invite = await m.expect("invite");
      await m.send(await m.join(invite.session));
      await m.send(await m.join(invite.session));
      // Both went while alice was stopped: the hospital still collected JOINs.
      await round.hospital.waitForLine(/^dropped mallory: second join$/);
      round.peers.get("alice")!.kill("SIGCONT");
    },
  },
  {
    label: "sends a chunk before its INPUT",
    modes: ["nofn", "threshold"],
    // Threshold: in the share phase; n-of-n: in the masked-input phase.
    reason:
      /^(dropped mallory: unexpected chunk in phase share|round aborted: mallory: chunk without input)$/,
    act: async (m) => {
      const invite = await m.expect("invite");
      await m.send(await m.join(invite.session));
      const start = await m.expect("start");
      const hash = await startHash(invite.session, invite.terms, start.participants);
      await m.send({
        type: "confirm",
        session: invite.session,
        signature: await sign(
          m.identity.privateKey,
          "confirm",
          confirmFields(invite.session, hash),
        ),
      });
      await m.expect("confirmations");
      await m.conn.write(encodeChunk(0, Float64Array.of(1)), AbortSignal.timeout(10_000));
    },
  },
];

for (const deviation of DEVIATIONS) {
  for (const mode of deviation.modes) {
    const outcome = mode === "nofn"
      ? "n-of-n: the round aborts cleanly"
      : "threshold: it is dropped and the round completes with the right sum";
    Deno.test(`an insider who ${deviation.label}: ${outcome}`, async () => {
      const dir = await makePki(["hospital", "alice", "bob", "mallory"]);
      let mallory: Insider | undefined;
      try {
        await scenario([dir], async (processes: CliProcess[]) => {
          const values = { alice: 5, bob: 7 };
          const round = await startRound(processes, dir, values, {
            peers: 3,
            hospitalArgs: mode === "threshold" ? ["--threshold", "2"] : [],
          });
          mallory = await Insider.connect(dir, "mallory", round.address);
          await deviation.act(mallory, round);
          const hospital = await ended(round.hospital, END_MS);
          // The protocol's reason for dropping the insider, not a timeout.
          assert.ok(
            round.hospital.stderrLines.some((l) => deviation.reason.test(l)),
            `the hospital logged no line matching ${deviation.reason}`,
          );
          if (mode === "nofn") {
            // Every invited peer's input counts in n-of-n: no result without mallory.
            assertCleanAbort("hospital", hospital, /round aborted: /);
            for (const [name, peer] of round.peers) {
              assertCleanAbort(name, await ended(peer, END_MS), /round aborted: /);
            }
            return;
          }
          const result = resultOf(hospital);
          assert.deepEqual(result.contributors, ["alice", "bob"]);
          assert.equal(result.sum, values.alice + values.bob);
          for (const name of ["alice", "bob"]) {
            const end = await ended(round.peers.get(name)!, END_MS);
            assert.equal(end.code, 0, `${name} exited ${end.code}`);
          }
        });
      } finally {
        (mallory as Insider | undefined)?.close();
      }
    });
  }
}
