import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { AuthError } from "../lib/errors.ts";
import {
  type CredentialPaths,
  loadCaCertificate,
  loadIdentity,
  verifyPartyCertificate,
} from "../lib/identity.ts";
import { createConsortium, PkiError, writeConsortium } from "../lib/pki.ts";
import { CliProcess, makePki, removeDir } from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** `sumshare certs ARGS`, run to its end. */
function certs(...args: string[]) {
  return new CliProcess("certs", ["certs", ...args]).finish();
}

/** What `openssl verify` prints for `certificates` against the CA in `dir`. */
async function opensslVerify(dir: string, ...certificates: string[]): Promise<string> {
  const openssl = await new Deno.Command("openssl", {
    args: ["verify", "-CAfile", join(dir, "ca.crt"), ...certificates],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(openssl.stdout).trim();
}

Deno.test("certs writes a CA and a key pair per party, keys owner-only, openssl verifies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    const { code, stderr } = await certs(
      "--out",
      dir,
      "--names",
      "hospital,alice,bob,charlie",
      "--hosts",
      "localhost,127.0.0.1,127.0.3.4",
    );
    assert.equal(code, 0, stderr);
    // A new --out folder is 0700 whatever the umask (review 17, F12): it holds ca.key.
    const fresh = join(dir, "fresh", "pki");
    const made = await certs("--out", fresh, "--names", "hospital,alice");
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await Deno.stat(fresh)).mode! & 0o777, 0o700, "a new --out folder");
    // Its parents, created on the way, are ordinary folders (review 18).
    assert.notEqual((await Deno.stat(join(dir, "fresh"))).mode! & 0o777, 0o700);
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
    assert.equal(await opensslVerify(dir, join(dir, "alice.crt")), `${join(dir, "alice.crt")}: OK`);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs refuses to overwrite without --force and writes nothing", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const before = await Deno.readTextFile(join(dir, "ca.crt"));
    const refused = await certs("--out", dir, "--names", "hospital,alice");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exist.*--force/);
    assert.equal(await Deno.readTextFile(join(dir, "ca.crt")), before);
    const forced = await certs("--out", dir, "--names", "hospital,alice", "--force");
    assert.equal(forced.code, 0, forced.stderr);
    // Replacing the CA silently would strand every party that is not in this run.
    assert.match(
      forced.stderr,
      /^warning: --force makes a NEW CA: .*every existing party must get new certificates.*--add/m,
    );
    assert.doesNotMatch(refused.stderr, /NEW CA/);
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
    const result = await certs("--out", "/nonexistent-never-written", "--names", names);
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

function credentials(dir: string, name: string): CredentialPaths {
  return { ca: join(dir, "ca.crt"), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

Deno.test("certs --add issues new parties from the existing CA; the old parties still verify", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const caBefore = await Deno.readTextFile(join(dir, "ca.crt"));
    const caKeyBefore = await Deno.readTextFile(join(dir, "ca.key"));
    const aliceBefore = await Deno.readTextFile(join(dir, "alice.crt"));
    const added = await certs("--add", "dave,erin", "--out", dir, "--hosts", "127.0.0.1,127.0.3.4");
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stderr, /wrote 4 files to .*: a \.crt and \.key for dave, erin/);
    assert.doesNotMatch(added.stderr, /NEW CA/);
    // The CA and the old parties are untouched.
    assert.equal(await Deno.readTextFile(join(dir, "ca.crt")), caBefore);
    assert.equal(await Deno.readTextFile(join(dir, "ca.key")), caKeyBefore);
    assert.equal(await Deno.readTextFile(join(dir, "alice.crt")), aliceBefore);
    const ca = await loadCaCertificate(caBefore);
    for (const name of ["dave", "erin"]) {
      assert.equal((await Deno.stat(join(dir, `${name}.key`))).mode! & 0o777, 0o600, name);
      assert.equal((await Deno.stat(join(dir, `${name}.crt`))).mode! & 0o777, 0o644, name);
      const identity = await loadIdentity(name, credentials(dir, name));
      assert.equal(identity.name, name);
      const cert = new x509.X509Certificate(identity.certPem);
      assert.deepEqual(
        cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => n.value),
        ["127.0.0.1", "127.0.3.4"],
      );
      assert.equal((await verifyPartyCertificate(identity.certPem, ca, name)).name, name);
    }
    for (const name of ["hospital", "alice"]) {
      assert.equal((await loadIdentity(name, credentials(dir, name))).name, name);
    }
    assert.equal(
      await opensslVerify(dir, join(dir, "dave.crt"), join(dir, "alice.crt")),
      `${join(dir, "dave.crt")}: OK\n${join(dir, "alice.crt")}: OK`,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs --add refuses a name whose files exist (exit 2), before writing anything", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const crt = await Deno.readTextFile(join(dir, "alice.crt"));
    const key = await Deno.readTextFile(join(dir, "alice.key"));
    const listing = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    const before = listing();
    const refused = await certs("--add", "dave,alice", "--out", dir);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /^sumshare: Cannot add parties: alice\.crt, alice\.key already exist in /m,
    );
    assert.equal(await Deno.readTextFile(join(dir, "alice.crt")), crt);
    assert.equal(await Deno.readTextFile(join(dir, "alice.key")), key);
    assert.equal((await Deno.stat(join(dir, "alice.key"))).mode! & 0o777, 0o600);
    assert.deepEqual(listing(), before, "dave was not written either");
    // Only the key left behind is enough to refuse: it may be someone's.
    await Deno.remove(join(dir, "alice.crt"));
    const keyOnly = await certs("--add", "alice", "--out", dir);
    assert.equal(keyOnly.code, 2, keyOnly.stderr);
    assert.match(keyOnly.stderr, /alice\.key already exist/);
    assert.equal(await Deno.readTextFile(join(dir, "alice.key")), key);
    // "ca" would overwrite the CA's own files.
    const ca = await certs("--add", "ca", "--out", dir);
    assert.equal(ca.code, 2, ca.stderr);
    assert.match(ca.stderr, /ca\.crt, ca\.key already exist/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs --add without a CA in DIR says so clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    const empty = await certs("--add", "dave", "--out", dir);
    assert.equal(empty.code, 1, empty.stderr);
    assert.match(
      empty.stderr,
      /^sumshare certs: Cannot add parties: there is no CA in \S+ \(ca\.crt not found\); make one with sumshare certs --names/m,
    );
    const missing = await certs("--add", "dave", "--out", join(dir, "nowhere"));
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /there is no CA in .*nowhere \(ca\.crt not found\)/);
    // A certificate without its key cannot sign.
    const other = await makePki(["x"]);
    try {
      await Deno.copyFile(join(other, "ca.crt"), join(dir, "ca.crt"));
      const noKey = await certs("--add", "dave", "--out", dir);
      assert.equal(noKey.code, 1, noKey.stderr);
      assert.match(noKey.stderr, /there is no CA in \S+ \(ca\.key not found\)/);
    } finally {
      await removeDir(other);
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["ca.crt"]);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("certs --add does not mix with --names or --force, and checks its names", async () => {
  for (
    const [args, message] of [
      [["--add", "dave", "--names", "erin"], /either --names .* or --add/],
      [["--add", "dave", "--force"], /--add never replaces files/],
      [["--add", "Dave"], /Invalid --add: Invalid party name "Dave"/],
      [["--add", "dave,dave"], /repeated/],
      [["--add", "dave,,erin"], /Invalid --add: empty item/],
    ] as const
  ) {
    const result = await certs(...args, "--out", "/nonexistent-never-written");
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(" "));
  }
  const help = await certs("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--add LIST +issue these parties from the existing CA/);
  assert.match(help.stdout, /--force .*NEW CA/s);
});

Deno.test("a private key readable by others is used, with a warning naming the file (review 17)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-test-" });
  try {
    const made = await certs("--out", dir, "--names", "hospital,alice");
    assert.equal(made.code, 0, made.stderr);
    // Nobody listens at port 1: the peer fails after loading its credentials.
    const peer = () =>
      runMain([..."peer --name alice --value 1 --hospital 127.0.0.1:1 --certs".split(" "), dir]);
    const quiet = await peer();
    assert.doesNotMatch(quiet.err, /readable by others/, "0600: no warning");
    await Deno.chmod(join(dir, "alice.key"), 0o644);
    const loud = await peer();
    assert.equal(loud.code, 1, loud.err);
    assert.match(
      loud.err,
      /warning: the private key \S*alice\.key is readable by others \(mode 0644\); make it 0600/,
    );
  } finally {
    await removeDir(dir);
  }
});
