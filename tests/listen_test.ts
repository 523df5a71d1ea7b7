/**
 * A `--listen` address that cannot be used is the user's to fix: the
 * hospital says so in one line and exits 1, without calling it a bug or
 * printing a stack. A peer never listens (it makes one connection to the
 * hospital), so `peer --listen` is an unknown option.
 */
import assert from "node:assert/strict";
import { CliProcess, makePki, peerArgs, removeDir } from "./helpers.ts";
import { hospitalOutcome } from "./scenarios.ts";

/**
 * The hospital asked to listen on `address` (with a real PKI, so that only
 * the address can stop it): one line on stderr, `Cannot listen on ADDRESS: `
 * and a reason matching `reason`, exit 1, nothing on stdout.
 */
async function assertCannotListen(address: string, reason: RegExp): Promise<void> {
  const dir = await makePki(["hospital", "alice"]);
  try {
    const r = await hospitalOutcome(dir, [], { listen: address, json: false });
    assert.equal(r.code, 1, `hospital: ${r.stderr}`);
    assert.equal(r.stdout, "");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `hospital printed more than one line:\n${r.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(
        `^sumshare hospital: Cannot listen on ${RegExp.escape(address)}: ${reason.source}$`,
      ),
    );
    assert.doesNotMatch(r.stderr, /a bug|EADDRINUSE|getaddrinfo|Error:/);
  } finally {
    await removeDir(dir);
  }
}

Deno.test("a busy --listen port is one line: address already in use", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assertCannotListen(
      `127.0.0.1:${busy.addr.port}`,
      /(the )?address (is )?already in use.*/,
    );
  } finally {
    busy.close();
  }
});

Deno.test("an address that is not this machine's is one line", async () => {
  // TEST-NET-1 (RFC 5737) is never assigned; binding it fails at once and
  // sends nothing. Linux says EADDRNOTAVAIL, gVisor EINVAL.
  await assertCannotListen(
    "192.0.2.1:7000",
    /the address (is not one of this machine's|cannot be used on this machine \(is it one of its own\?\)).*/,
  );
});

Deno.test("an unknown --listen host name is one line", async () => {
  // An empty label is refused by the resolver itself, so no DNS query
  // leaves the machine.
  await assertCannotListen(
    "no-such-host..invalid:7000",
    /(unknown host name|cannot resolve the host name).*/,
  );
});

Deno.test("peer --listen is refused as an unknown option (exit 2): a peer never listens", async () => {
  const dir = await makePki(["hospital", "alice"]);
  // A port that is busy: had the peer tried to bind it, it would say so.
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const r = await new CliProcess(
      "alice",
      peerArgs(dir, "alice", "127.0.0.1:1", [
        "--value",
        "1",
        "--listen",
        `127.0.0.1:${busy.addr.port}`,
      ]),
    ).finish();
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr.split("\n")[0]!, /^sumshare: Unknown option --listen$/);
    assert.doesNotMatch(r.stderr, /Cannot listen|connected to the hospital/);
  } finally {
    busy.close();
    await removeDir(dir);
  }
});
