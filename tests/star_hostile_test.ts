/**
 * Authenticated insiders against the star hospital, as real processes: a
 * consortium peer using lib/net/client.ts `connect` and lib/wire/messages.ts
 * that sends what the protocol forbids (an oversized first frame, a JOIN
 * with a bad signature, a second JOIN, a chunk before its INPUT) is dropped
 * or the round aborts cleanly, never a wrong sum. (Outsiders on the
 * hospital's port are tests/outsiders_test.ts; the core's own attack tests
 * are tests/protocol/attacks_test.ts.)
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
import { type CliProcess, makePki, scenario } from "./helpers.ts";
import {
  assertCleanAbort,
  ended,
  FAULT_TIMEOUT_S,
  resultOf,
  type StarRound,
  startRound,
} from "./star_helpers.ts";

const END_MS = (3 * FAULT_TIMEOUT_S + 15) * 1000;
/** The join window: wide, since every party here does connect. */
const JOIN_TIMEOUT_S = 60;

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
            // Everyone connects here (mallory too): a slow start on a loaded
            // machine must not pass the join deadline, which nothing tests.
            joinTimeoutS: JOIN_TIMEOUT_S,
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
