/**
 * TLS and socket failures a user can reach, driven through the real CLI
 * processes: each ends the process with exit 1 and ONE line that says what
 * happened and what to check (lib/net/errors.ts maps them at the
 * transport), and no raw runtime text (rustls' and node's words, URLs, "os
 * error N", stack traces) reaches any line of the output. The mapping table
 * itself is unit-tested in tests/net/errors_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type CliProcess, makePki, scenario, spawnHospital, spawnPeer } from "./helpers.ts";
import { assertNoResult, ended, FAULT_TIMEOUT_S } from "./star_helpers.ts";

const END_MS = (3 * FAULT_TIMEOUT_S + 15) * 1000;

/** Raw texts that must never reach a user (the runtime's words, not sumshare's). */
const RAW =
  /BadSignature|DecryptError|UnknownIssuer|NotValidForName|InvalidCertificate|close_notify|docs\.rs|https?:\/\/|socket hang up|broken pipe|Bad resource ID|os error|ECONN|EPIPE|ERR_SSL|UnexpectedEof|InvalidData|Uncaught|^\s+at /m;

/** Asserts a process failed with exactly one error line matching `says`, and no raw text anywhere. */
function assertOneLine(end: { code: number; stderr: string; stdout: string }, says: RegExp): void {
  assert.equal(end.code, 1, end.stderr);
  assertNoResult("the process", end.stdout);
  const errors = end.stderr.split("\n").filter((l) => /^sumshare (peer|hospital): /.test(l));
  assert.equal(errors.length, 1, `one error line:\n${end.stderr}`);
  assert.match(errors[0]!, says);
  assert.ok(errors[0]!.length < 400, `a short line: ${errors[0]}`);
  assert.doesNotMatch(end.stderr, RAW, "no raw runtime text");
  assert.doesNotMatch(end.stderr, /a bug/, "not called a bug");
}

/** A free port on 127.0.0.1: nothing listens there a moment later. */
function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

Deno.test("transport failures through the CLI: one readable line each, no raw text", async (t) => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  const foreign = await makePki(["hospital", "alice"]);
  // A consortium whose hospital certificate names only "localhost", not 127.0.0.1.
  const named = await makePki(["hospital", "alice"], ["localhost"]);
  await scenario([dir, foreign, named], async (processes: CliProcess[]) => {
    await t.step("connection refused: nothing listens at the address", async () => {
      const port = freePort();
      const peer = spawnPeer(dir, "alice", "1", `127.0.0.1:${port}`, "--timeout", "20");
      processes.push(peer);
      assertOneLine(
        await ended(peer, END_MS),
        new RegExp(
          `^sumshare peer: Cannot connect to the hospital at 127\\.0\\.0\\.1:${port}: connection refused \\(check the address and port, and that the hospital at 127\\.0\\.0\\.1:${port} is running\\)$`,
        ),
      );
    });

    await t.step("not a hospital: the port speaks something other than TLS", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (listener.addr as Deno.NetAddr).port;
      const serving = (async () => {
        const conn = await listener.accept();
        try {
          await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
          await new Promise((resolve) => setTimeout(resolve, 500));
        } finally {
          conn.close();
        }
      })();
      try {
        const peer = spawnPeer(dir, "alice", "1", `127.0.0.1:${port}`, "--timeout", "20");
        processes.push(peer);
        assertOneLine(
          await ended(peer, END_MS),
          /^sumshare peer: Cannot connect to the hospital at 127\.0\.0\.1:\d+: the hospital at 127\.0\.0\.1:\d+ does not speak TLS \(check the port: it must be the sumshare hospital's\)$/,
        );
      } finally {
        listener.close();
        await serving.catch(() => {});
      }
    });

    // One hospital serves the next two: neither peer gets in, so it waits,
    // then the last step's round. Its join window spans all three steps, so
    // it is wide: a loaded machine starting processes must not close it.
    const hospital = spawnHospital(dir, 2, "--timeout", "30", "--join-timeout", "120");
    processes.push(hospital);
    const address = await hospital.address();

    await t.step("the peer's consortium is another (a foreign CA)", async () => {
      const peer = spawnPeer(foreign, "alice", "1", address, "--timeout", "20");
      processes.push(peer);
      assertOneLine(
        await ended(peer, END_MS),
        /^sumshare peer: Cannot connect to the hospital at 127\.0\.0\.1:\d+: the certificate of the hospital at 127\.0\.0\.1:\d+ is not issued by the consortium CA this party trusts \(check that both use the same consortium's ca\.crt\)$/,
      );
      // And the hospital said why it lost the connection, in one line of its own.
      const [line] = await hospital.waitForLines(/^refused a connection from /, 1);
      assert.doesNotMatch(line!, RAW);
      assert.match(line!, /: Cannot accept a connection from 127\.0\.0\.1:\d+: /);
    });

    await t.step("the hospital's certificate does not name the host the peer dialled", async () => {
      const other = spawnHospital(named, 2, "--timeout", "30");
      processes.push(other);
      const otherAddress = await other.address();
      const peer = spawnPeer(named, "alice", "1", otherAddress, "--timeout", "20");
      processes.push(peer);
      assertOneLine(
        await ended(peer, END_MS),
        /^sumshare peer: Cannot connect to the hospital at 127\.0\.0\.1:\d+: the certificate of the hospital at 127\.0\.0\.1:\d+ does not name (host 127\.0\.0\.1|the host connected to) \(connect with a host name its certificate names, or reissue it with that host\)$/,
      );
      other.kill();
    });

    await t.step("the hospital goes away mid-round", async () => {
      // The hospital above waits for two peers: they join, and it is killed as they confirm.
      const peers = ["alice", "bob"].map((name) =>
        spawnPeer(dir, name, "1", address, "--timeout", "20")
      );
      processes.push(...peers);
      await Promise.all(peers.map((peer) => peer.waitForLine(/^sending confirm$/)));
      hospital.kill();
      for (const peer of peers) {
        assertOneLine(
          await ended(peer, END_MS),
          /^sumshare peer: round aborted: lost the connection to the hospital in phase confirm$/,
        );
        // The line before it says how the connection ended, mapped at the transport.
        assert.ok(
          peer.stderrLines.some((l) =>
            /^The hospital at 127\.0\.0\.1:\d+ closed the connection|^Cannot read from the hospital at 127\.0\.0\.1:\d+: the hospital at 127\.0\.0\.1:\d+ closed the connection abruptly \(it stopped, or refused a certificate: check its log\)$/
              .test(l)
          ),
          peer.log(),
        );
      }
    });
  });
});
