/**
 * The hospital's port and a peer's share port, checked with a tool nobody
 * here wrote: `openssl s_client`.
 *
 * - Trusting the consortium CA (`-CAfile ca.crt -verify_return_error`), it
 *   connects, negotiates TLS 1.3 (and TLS 1.2 when forced), and verifies a
 *   chain from the party's certificate (CN = its name, SAN 127.0.0.1) to the
 *   consortium CA.
 * - TLS 1.0 and 1.1 are not negotiated, even by a client willing to use them.
 * - A client that trusts another CA fails verification.
 * - A plain TCP client gets no application data and is disconnected.
 * Each refused client is logged by the party as "refused connection from
 * HOST:PORT: TLS handshake failed: <the TLS library's reason>". Afterwards
 * the honest round still completes.
 *
 * Skipped, with a message, where `openssl` is not on PATH.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, dumpLogs, makePki, removeDir, stopAll } from "./helpers.ts";

async function opensslVersion(): Promise<string | undefined> {
  try {
    const { success, stdout } = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout).trim() : undefined;
  } catch {
    return undefined; // NotFound: not installed
  }
}

const OPENSSL = await opensslVersion();
if (OPENSSL === undefined) {
  console.log("openssl_test: SKIPPED: `openssl` is not on PATH (install it, e.g. in .ci/run)");
}

/** Runs `openssl s_client` with stdin closed at once (so it exits after the handshake). */
async function sClient(args: string[]): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("openssl", {
    args: ["s_client", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  await child.stdin.close();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 15_000);
  try {
    const { code, stdout, stderr } = await child.output();
    const text = new TextDecoder();
    return { code, output: text.decode(stdout) + "\n" + text.decode(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

async function certificateCn(path: string): Promise<string> {
  const { stdout } = await new Deno.Command("openssl", {
    args: ["x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253"],
  }).output();
  const m = /^subject=CN=(.+)$/m.exec(new TextDecoder().decode(stdout));
  assert.ok(m, `no CN in ${path}`);
  return m[1]!.trim();
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Reads until the other side closes; bounded by `ms`. */
async function readToEnd(
  conn: Deno.Conn,
  ms: number,
): Promise<{ closed: boolean; bytes: number[] }> {
  const bytes: number[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, ms);
  try {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      bytes.push(...buffer.subarray(0, n));
    }
  } catch {
    // reset by the server
  } finally {
    clearTimeout(timer);
  }
  try {
    conn.close();
  } catch { /* closed */ }
  return { closed: !timedOut, bytes };
}

function cli(name: string, args: string[]): CliProcess {
  return new CliProcess(name, args);
}

Deno.test({
  name: "openssl s_client: only TLS 1.2/1.3, a chain to the consortium CA; strangers are refused",
  ignore: OPENSSL === undefined,
  async fn(t) {
    console.log(`using ${OPENSSL}`);
    const dir = await makePki(["hospital", "alice", "bob"]);
    const stranger = await makePki(["hospital"]);
    const processes: CliProcess[] = [];
    try {
      const h = cli("hospital", [
        "hospital",
        "--listen",
        "127.0.0.1:0",
        "--peers",
        "2",
        "--certs",
        dir,
        "--json",
      ]);
      processes.push(h);
      const hospitalAddress = await h.address();
      const alice = cli("alice", [
        "peer",
        "--name",
        "alice",
        "--value",
        "8",
        "--hospital",
        hospitalAddress,
        "--certs",
        dir,
      ]);
      processes.push(alice);
      const shareAddress = await alice.address();
      await h.waitForLine(/^alice joined/);

      const caFile = join(dir, "ca.crt");
      const caCn = await certificateCn(caFile);
      const ports = [
        { name: "hospital", process: h, address: hospitalAddress },
        { name: "alice", process: alice, address: shareAddress },
      ];
      let failures = 0;
      const step = async (name: string, fn: () => Promise<void>) => {
        if (!(await t.step(name, fn))) failures++;
      };

      for (const { name, process, address } of ports) {
        const connect = ["-connect", address];
        /** Waits for a refusal logged after line `mark` whose reason matches `reason`. */
        const refused = (mark: number, reason: RegExp) =>
          waitFor(
            () =>
              process.stderrLines.slice(mark).some((l) =>
                /^refused connection from 127\.0\.0\.1:\d+: /.test(l) && reason.test(l)
              ),
            `${name} logs a refusal matching ${reason}`,
          );

        await step(`${name}: TLS 1.3 by default, chain verified to the consortium CA`, async () => {
          const r = await sClient([
            ...connect,
            "-CAfile",
            caFile,
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
          ]);
          assert.equal(r.code, 0, r.output);
          assert.match(r.output, /New, TLSv1\.3, Cipher is TLS_/);
          assert.match(r.output, /Verify return code: 0 \(ok\)/);
          assert.match(r.output, /Verification: OK/);
          assert.match(r.output, new RegExp(`depth=1 CN = ${escape(caCn)}\\s+verify return:1`));
          assert.match(r.output, new RegExp(`depth=0 CN = ${escape(name)}\\s+verify return:1`));
          assert.match(r.output, new RegExp(`^subject=CN = ${escape(name)}$`, "m"));
          assert.match(r.output, new RegExp(`^issuer=CN = ${escape(caCn)}$`, "m"));
        });

        await step(`${name}: TLS 1.2 works when forced`, async () => {
          const r = await sClient([
            ...connect,
            "-CAfile",
            caFile,
            "-verify_return_error",
            "-tls1_2",
          ]);
          assert.equal(r.code, 0, r.output);
          assert.match(r.output, /New, TLSv1\.2, Cipher is ECDHE-ECDSA-/);
          assert.match(r.output, /Protocol\s+: TLSv1\.2/);
          assert.match(r.output, /Verify return code: 0 \(ok\)/);
        });

        for (const old of ["-tls1", "-tls1_1"]) {
          await step(`${name}: ${old} is not negotiated`, async () => {
            const mark = process.stderrLines.length;
            // SECLEVEL=0 so that OpenSSL 3 really offers the old version: the
            // refusal must come from the server, not from the client's policy.
            const r = await sClient([
              ...connect,
              "-CAfile",
              caFile,
              "-verify_return_error",
              old,
              "-cipher",
              "DEFAULT@SECLEVEL=0",
            ]);
            assert.notEqual(r.code, 0, r.output);
            assert.doesNotMatch(r.output, /no protocols available/, "the client offered it");
            // Nothing negotiated (the session block still echoes the version asked for).
            assert.match(r.output, /New, \(NONE\), Cipher is \(NONE\)/);
            assert.match(r.output, /Cipher\s+: 0000/);
            assert.match(r.output, /alert|wrong version|unsupported protocol/i);
            await refused(mark, /TLS handshake failed: .*(incompatible|version|protocol)/i);
          });
        }

        await step(`${name}: a client that trusts another CA fails verification`, async () => {
          const mark = process.stderrLines.length;
          const r = await sClient([
            ...connect,
            "-CAfile",
            join(stranger, "ca.crt"),
            "-verify_return_error",
          ]);
          assert.notEqual(r.code, 0, r.output);
          assert.match(
            r.output,
            /unable to get local issuer certificate|certificate verify failed/,
          );
          assert.doesNotMatch(r.output, /Verify return code: 0 \(ok\)/);
          await refused(mark, /TLS handshake failed: .*(UnknownCA|unknown ca)/i);
        });

        await step(
          `${name}: a plain TCP client gets no application data and is closed`,
          async () => {
            const [hostname, port] = [address.split(":")[0]!, Number(address.split(":")[1])];
            const mark = process.stderrLines.length;
            const conn = await Deno.connect({ hostname, port });
            await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")).catch(() => 0);
            const { closed, bytes } = await readToEnd(conn, 5000);
            assert.ok(closed, "the server closed the connection");
            // At most a TLS alert record (content type 21), never a protocol message.
            assert.ok(bytes.length === 0 || bytes[0] === 0x15, `got ${JSON.stringify(bytes)}`);
            assert.ok(bytes.length < 64);
            await refused(
              mark,
              /TLS handshake failed: .*(corrupt|InvalidContentType|wrong version)/i,
            );
          },
        );
      }

      await step("the honest round still completes", async () => {
        const bob = cli("bob", [
          "peer",
          "--name",
          "bob",
          "--value",
          "34",
          "--hospital",
          hospitalAddress,
          "--certs",
          dir,
        ]);
        processes.push(bob);
        const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
        assert.equal(hr.code, 0);
        assert.equal(JSON.parse(hr.stdout).sum, 42);
        assert.equal(ar.code + br.code, 0);
        for (const p of processes) {
          assert.deepEqual(p.stderrLines.filter((l) => /^\s+at /.test(l)), [], p.name);
        }
      });
      if (failures > 0) dumpLogs(processes);
    } finally {
      await stopAll(processes);
      await removeDir(dir);
      await removeDir(stranger);
    }
  },
});

async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
