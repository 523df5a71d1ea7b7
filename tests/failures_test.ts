/**
 * Failures, with real processes: each ends with a clear message, a non-zero
 * exit where a party fails, and no sum printed. Where the culprit is an
 * outsider, the honest round still completes with the right sum.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_FRAME_BYTES } from "../lib/frame.ts";
import {
  assertValueNotPrinted,
  CliProcess,
  makePki,
  scenario,
  spawnHospital as hospital,
  spawnPeer as peer,
} from "./helpers.ts";

Deno.test("a peer whose certificate comes from another CA is refused; the honest round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  const other = await makePki(["mallory"]);
  await scenario([dir, other], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    // mallory trusts the real CA (so TLS to the hospital works) but her own
    // certificate is from another CA; she cannot even load it as an identity.
    const mallory = new CliProcess("mallory", [
      "peer",
      "--name",
      "mallory",
      "--value",
      "1",
      "--hospital",
      address,
      "--ca",
      join(dir, "ca.crt"),
      "--cert",
      join(other, "mallory.crt"),
      "--key",
      join(other, "mallory.key"),
    ]);
    // A whole foreign PKI: the TLS handshake with the hospital fails.
    const foreign = peer(other, "mallory", "1", address);
    ps.push(mallory, foreign);
    const [m, f] = await Promise.all([mallory.finish(), foreign.finish()]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /not issued by the consortium CA/);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /certificate|UnknownIssuer/i);
    assert.equal(m.stdout + f.stdout, "");
    await h.waitForLine(/refused connection from 127\.0\.0\.1:\d+: .*/);

    const alice = peer(dir, "alice", "40", address);
    const bob = peer(dir, "bob", "2", address);
    ps.push(alice, bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.deepEqual(JSON.parse(hr.stdout).participants, ["alice", "bob"]);
    assert.equal(ar.code + br.code, 0);
  });
});

Deno.test("a peer claiming a name that is not its certificate's is refused", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2, "--timeout", "3");
    ps.push(h);
    const address = await h.address();
    const liar = new CliProcess("liar", [
      "peer",
      "--name",
      "bob",
      "--value",
      "987654",
      "--hospital",
      address,
      "--ca",
      join(dir, "ca.crt"),
      "--cert",
      join(dir, "alice.crt"),
      "--key",
      join(dir, "alice.key"),
    ]);
    ps.push(liar);
    const r = await liar.finish();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Name mismatch: party claims "bob" but its certificate is for "alice"/);
    assertValueNotPrinted(r.stderr, 987654);
    // Nobody joined: the hospital times out, prints no sum, exits 1.
    const hr = await h.finish();
    assert.equal(hr.code, 1);
    assert.equal(hr.stdout, "");
    assert.match(hr.stderr, /Timed out after 3 s waiting for peers to join \(0 of 2 joined\)/);
  });
});

Deno.test("a duplicate name is refused; the first holder of the name stays in the round", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "100", address);
    ps.push(alice);
    await h.waitForLine(/^alice joined/);
    const twin = peer(dir, "alice", "7", address);
    ps.push(twin);
    const t = await twin.finish();
    assert.equal(t.code, 1);
    assert.match(t.stderr, /Cannot join round: a party named "alice" has already joined/);
    assert.equal(t.stdout, "");
    const bob = peer(dir, "bob", "11", address);
    ps.push(bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 111);
    assert.equal(ar.code + br.code, 0);
  });
});

Deno.test("a peer that dies mid-round makes every party abort; the hospital exits 1", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "charlie"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 3, "--timeout", "10");
    ps.push(h);
    const address = await h.address();
    // charlie joins first and is frozen, so the round starts without it able
    // to act; it is killed once the others are exchanging shares.
    const charlie = peer(dir, "charlie", "3", address, "--timeout", "10");
    ps.push(charlie);
    await h.waitForLine(/^charlie joined/);
    charlie.kill("SIGSTOP");
    const alice = peer(dir, "alice", "1", address, "--timeout", "10");
    const bob = peer(dir, "bob", "2", address, "--timeout", "10");
    ps.push(alice, bob);
    await h.waitForLine(/^starting session/);
    await alice.waitForLine(/^round [0-9a-f]{8} started/);
    charlie.kill("SIGKILL");
    const started = performance.now();
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.ok(performance.now() - started < 12_000, "aborted within the timeout");
    for (const r of [hr, ar, br]) assert.equal(r.code, 1);
    assert.equal(hr.stdout, "", "no sum printed");
    assert.match(hr.stderr, /round aborted: .*charlie/);
    // Each names a concrete cause: the dead peer, or a peer that already gave up.
    for (const r of [ar, br]) {
      assert.match(
        r.stderr,
        /round aborted: (Cannot send share to (alice|bob|charlie)|hospital aborted the round)/,
      );
    }
  });
});

Deno.test("garbage, an oversized length prefix and a plain TCP client are refused; the round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    const [hostname, port] = [address.split(":")[0]!, Number(address.split(":")[1])];
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));

    // 1. Plain TCP garbage: the TLS handshake fails.
    const tcp = await Deno.connect({ hostname, port });
    await tcp.write(crypto.getRandomValues(new Uint8Array(512)));
    // 2. TLS, then a 4 GiB length prefix.
    const huge = await Deno.connectTls({ hostname, port, caCerts: [ca] });
    await huge.handshake();
    await huge.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    // 3. TLS, then a well-framed payload that is not JSON.
    const junk = await Deno.connectTls({ hostname, port, caCerts: [ca] });
    await junk.handshake();
    await junk.write(new Uint8Array([0, 0, 0, 5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]));
    try {
      await h.waitForLine(
        new RegExp(`refused connection .*exceeds the limit of ${MAX_FRAME_BYTES} bytes`),
      );
      await h.waitForLine(/refused connection .*not UTF-8 JSON/);
      // Each hostile connection is closed by the hospital.
      for (const conn of [huge, junk]) {
        const buf = new Uint8Array(1024);
        let n: number | null = 0;
        while (n !== null) n = await conn.read(buf).catch(() => null);
      }
    } finally {
      for (const c of [tcp, huge, junk]) {
        try {
          c.close();
        } catch { /* closed by the hospital */ }
      }
    }

    const alice = peer(dir, "alice", "20", address);
    const bob = peer(dir, "bob", "22", address);
    ps.push(alice, bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 42);
    assert.equal(ar.code + br.code, 0);
  });
});

Deno.test("garbage sent to a peer's share port is refused; the round completes", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 2);
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "5", address);
    ps.push(alice);
    const shareAddress = await alice.address();
    const [hostname, port] = [shareAddress.split(":")[0]!, Number(shareAddress.split(":")[1])];
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));
    const huge = await Deno.connectTls({ hostname, port, caCerts: [ca] });
    await huge.handshake();
    await huge.write(new Uint8Array([0x7f, 0xff, 0xff, 0xff]));
    await alice.waitForLine(/refused connection .*exceeds the limit/);
    huge.close();
    const bob = peer(dir, "bob", "6", address);
    ps.push(bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 0);
    assert.equal(JSON.parse(hr.stdout).sum, 11);
    assert.equal(ar.code + br.code, 0);
  });
});

Deno.test("too few peers: the hospital times out and tells the peers that joined", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "charlie"]);
  await scenario([dir], async (ps) => {
    const h = hospital(dir, 3, "--timeout", "2");
    ps.push(h);
    const address = await h.address();
    const alice = peer(dir, "alice", "1", address);
    const bob = peer(dir, "bob", "2", address);
    ps.push(alice, bob);
    const [hr, ar, br] = await Promise.all([h.finish(), alice.finish(), bob.finish()]);
    assert.equal(hr.code, 1);
    assert.equal(hr.stdout, "");
    assert.match(
      hr.stderr,
      /Timed out after 2 s waiting for peers to join \(2 of 3 joined: alice, bob\)/,
    );
    for (const r of [ar, br]) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /hospital aborted the round: Timed out/);
    }
  });
});

Deno.test("a peer with no hospital to reach fails fast and clearly", async () => {
  const dir = await makePki(["hospital", "alice"]);
  await scenario([dir], async (ps) => {
    // Bind and close a port so that nothing listens on it.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const alice = peer(dir, "alice", "1", `127.0.0.1:${port}`);
    ps.push(alice);
    const r = await alice.finish();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Connection refused/i);
  });
});
