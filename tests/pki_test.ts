import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { AuthError } from "../lib/errors.ts";
import { loadCaCertificate, loadIdentity, verifyPartyCertificate } from "../lib/identity.ts";
import { createConsortium, PkiError, writeConsortium } from "../lib/pki.ts";
import { CliProcess, makePki, removeDir } from "./helpers.ts";

Deno.test("certs writes a CA and a key pair per party, keys owner-only, openssl verifies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    const cli = new CliProcess("certs", [
      "certs",
      "--out",
      dir,
      "--names",
      "hospital,alice,bob,charlie",
      "--hosts",
      "localhost,127.0.0.1,127.0.3.4",
    ]);
    const { code, stderr } = await cli.finish();
    assert.equal(code, 0, stderr);
    for (const name of ["ca", "hospital", "alice", "bob", "charlie"]) {
      const crt = await Deno.stat(join(dir, `${name}.crt`));
      const key = await Deno.stat(join(dir, `${name}.key`));
      assert.equal(key.mode! & 0o777, 0o600, `${name}.key mode`);
      assert.ok(crt.isFile);
      // One PKCS#8 block that Web Crypto accepts as an ECDSA P-256 signing key.
      const blocks = x509.PemConverter.decodeWithHeaders(
        await Deno.readTextFile(join(dir, `${name}.key`)),
      );
      assert.deepEqual(blocks.map((b) => b.type), ["PRIVATE KEY"]);
      const imported = await crypto.subtle.importKey(
        "pkcs8",
        blocks[0]!.rawData,
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        ["sign"],
      );
      assert.equal(imported.type, "private");
    }
    const alice = new x509.X509Certificate(await Deno.readTextFile(join(dir, "alice.crt")));
    assert.deepEqual(alice.subjectName.getField("CN"), ["alice"]);
    assert.equal((alice.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
    const san = alice.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(san.names.items.map((n) => `${n.type}:${n.value}`), [
      "dns:localhost",
      "ip:127.0.0.1",
      "ip:127.0.3.4",
    ]);
    const openssl = await new Deno.Command("openssl", {
      args: ["verify", "-CAfile", join(dir, "ca.crt"), join(dir, "alice.crt")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(openssl.stdout).trim(), `${join(dir, "alice.crt")}: OK`);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs refuses to overwrite without --force and writes nothing", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const before = await Deno.readTextFile(join(dir, "ca.crt"));
    const refused = await new CliProcess("certs", [
      "certs",
      "--out",
      dir,
      "--names",
      "hospital,alice",
    ]).finish();
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exist.*--force/);
    assert.equal(await Deno.readTextFile(join(dir, "ca.crt")), before);
    const forced = await new CliProcess("certs", [
      "certs",
      "--out",
      dir,
      "--names",
      "hospital,alice",
      "--force",
    ])
      .finish();
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await Deno.readTextFile(join(dir, "ca.crt")), before);
    assert.equal((await Deno.stat(join(dir, "alice.key"))).mode! & 0o777, 0o600);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs refuses invalid party names with the rule", async () => {
  for (
    const names of ["Alice", "al ice", "a".repeat(33), "alice,,bob", "alice,alice", "ali.ce", ""]
  ) {
    const result = await new CliProcess("certs", [
      "certs",
      "--out",
      "/nonexistent-never-written",
      "--names",
      names,
    ])
      .finish();
    assert.notEqual(result.code, 0, names);
    assert.match(result.stderr, /party name|empty item|repeated/, names);
  }
  await assert.rejects(createConsortium(["ok", "Not-OK"]), /lowercase letters, digits/);
  await assert.rejects(createConsortium(["ok"], { hosts: ["bad host"] }), PkiError);
});

Deno.test("a certificate is accepted only from the consortium CA and for its own name", async () => {
  const ours = await createConsortium(["alice"]);
  const theirs = await createConsortium(["alice"]);
  const ca = await loadCaCertificate(ours.ca.cert);
  const alice = ours.parties.get("alice")!;
  assert.equal((await verifyPartyCertificate(alice.cert, ca, "alice")).name, "alice");
  await assert.rejects(
    verifyPartyCertificate(alice.cert, ca, "bob"),
    /Name mismatch.*"bob".*"alice"/,
  );
  await assert.rejects(
    verifyPartyCertificate(theirs.parties.get("alice")!.cert, ca, "alice"),
    /not issued by the consortium CA/,
  );
  await assert.rejects(verifyPartyCertificate(ours.ca.cert, ca, "alice"), AuthError);
  await assert.rejects(verifyPartyCertificate("not a cert", ca, "alice"), AuthError);
});

Deno.test("loadIdentity checks the key matches the certificate", async () => {
  const dir = await makePki(["alice", "bob"]);
  try {
    const ok = await loadIdentity("alice", {
      ca: join(dir, "ca.crt"),
      cert: join(dir, "alice.crt"),
      key: join(dir, "alice.key"),
    });
    assert.equal(ok.name, "alice");
    await assert.rejects(
      loadIdentity("alice", {
        ca: join(dir, "ca.crt"),
        cert: join(dir, "alice.crt"),
        key: join(dir, "bob.key"),
      }),
      /does not match/,
    );
    await assert.rejects(
      loadIdentity("bob", {
        ca: join(dir, "ca.crt"),
        cert: join(dir, "alice.crt"),
        key: join(dir, "alice.key"),
      }),
      /Name mismatch/,
    );
    await assert.rejects(
      loadIdentity("alice", {
        ca: join(dir, "missing.crt"),
        cert: join(dir, "alice.crt"),
        key: join(dir, "alice.key"),
      }),
      /Cannot read CA certificate/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("writeConsortium refuses before writing when any file exists", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    await Deno.writeTextFile(join(dir, "bob.key"), "mine");
    await assert.rejects(
      writeConsortium(dir, await createConsortium(["alice", "bob"])),
      /bob.key already exist/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["bob.key"]);
  } finally {
    await removeDir(dir);
  }
});
