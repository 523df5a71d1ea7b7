/**
 * A `--listen` address that cannot be used is the user's to fix: the
 * hospital says so in one line and exits 1, without calling it a bug or
 * printing a stack. A peer never listens (it makes one connection to the
 * hospital), so `peer --listen` is an unknown option.
 */
import assert from "node:assert/strict";
import { CliProcess, makePki, removeDir } from "./helpers.ts";

/** The hospital asked to listen on `address`; its outcome. */
function hospitalListensOn(dir: string, address: string) {
  return new CliProcess("hospital", [
    "hospital",
    "--listen",
    address,
    "--peers",
    "2",
    "--certs",
    dir,
  ]).finish();
}

function assertOneLine(
  role: string,
  r: { code: number; stdout: string; stderr: string },
  expected: RegExp,
): void {
  assert.equal(r.code, 1, `${role}: ${r.stderr}`);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${role} printed more than one line:\n${r.stderr}`);
  assert.match(lines[0]!, new RegExp(`^sumshare ${role}: ${expected.source}$`));
  assert.doesNotMatch(r.stderr, /a bug|EADDRINUSE|getaddrinfo|Error:/);
}

Deno.test("a busy --listen port is one line: address already in use", async () => {
  const dir = await makePki(["hospital", "alice"]);
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const address = `127.0.0.1:${busy.addr.port}`;
    assertOneLine(
      "hospital",
      await hospitalListensOn(dir, address),
      new RegExp(
        `Cannot listen on ${RegExp.escape(address)}: (the )?address (is )?already in use.*`,
      ),
    );
  } finally {
    busy.close();
    await removeDir(dir);
  }
});

Deno.test("an address that is not this machine's is one line", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    // TEST-NET-1 (RFC 5737) is never assigned; binding it fails at once and
    // sends nothing. Linux says EADDRNOTAVAIL, gVisor EINVAL.
    assertOneLine(
      "hospital",
      await hospitalListensOn(dir, "192.0.2.1:7000"),
      /Cannot listen on 192\.0\.2\.1:7000: the address (is not one of this machine's|cannot be used on this machine \(is it one of its own\?\)).*/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("an unknown --listen host name is one line", async () => {
  const dir = await makePki(["hospital", "alice"]);
  try {
    // An empty label is refused by the resolver itself, so no DNS query
    // leaves the machine.
    assertOneLine(
      "hospital",
      await hospitalListensOn(dir, "no-such-host..invalid:7000"),
      /Cannot listen on no-such-host\.\.invalid:7000: (unknown host name|cannot resolve the host name).*/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("peer --listen is refused as an unknown option (exit 2): a peer never listens", async () => {
  const dir = await makePki(["hospital", "alice"]);
  // A port that is busy: had the peer tried to bind it, it would say so.
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const r = await new CliProcess("alice", [
      "peer",
      "--name",
      "alice",
      "--value",
      "1",
      "--hospital",
      "127.0.0.1:1",
      "--listen",
      `127.0.0.1:${busy.addr.port}`,
      "--certs",
      dir,
    ]).finish();
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr.split("\n")[0]!, /^sumshare: Unknown option --listen$/);
    assert.doesNotMatch(r.stderr, /Cannot listen|connected to the hospital/);
  } finally {
    busy.close();
    await removeDir(dir);
  }
});
