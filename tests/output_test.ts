/**
 * The hospital's `--out`: refused before the round when it cannot be
 * written, the result printed even when writing fails at the end, and the
 * receipt readable by its owner only.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makePki, removeDir, scenario } from "./helpers.ts";
import { finishStar, hospitalOutcome, runRound, startHospital, startPeers } from "./scenarios.ts";

Deno.test("an --out that cannot be written is refused with exit 2 before the hospital listens", async () => {
  const dir = await makePki(["hospital"]);
  try {
    await Deno.writeTextFile(join(dir, "a-file"), "");
    for (
      const [out, reason] of [
        ["/nonexistent/dir/r.json", /No such file or directory/],
        [join(dir, "a-file", "r.json"), /Not a directory/], // a path under a file: root too is refused
        [dir, /Is a directory/],
      ] as const
    ) {
      const r = await hospitalOutcome(dir, ["--out", out, "--timeout", "5"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`Cannot write the receipt to ${RegExp.escape(out)}: `));
      assert.match(r.stderr, reason);
      assert.doesNotMatch(r.stderr, /listening on/);
      // --json: the failure as one JSON error object, and no result.
      const failure = JSON.parse(r.stdout);
      assert.deepEqual(Object.keys(failure), ["error"]);
      assert.equal(failure.error.kind, "usage");
      assert.match(
        failure.error.message,
        new RegExp(`Cannot write the receipt to ${RegExp.escape(out)}: `),
      );
    }
    // The check leaves nothing behind when the path did not exist.
    const ok = await hospitalOutcome("/nowhere", ["--out", join(dir, "new.json")], { json: false });
    assert.equal(ok.code, 1, "passes the --out check, then fails on the credentials");
    await assert.rejects(Deno.stat(join(dir, "new.json")), Deno.errors.NotFound);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("when the receipt cannot be written at the end, the result is still printed", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  const gone = join(dir, "gone");
  await Deno.mkdir(gone);
  const out = join(gone, "receipt.json");
  await scenario([dir], async (processes) => {
    const { hospital, address } = await startHospital(processes, dir, 2, {
      hospitalArgs: ["--out", out],
    });
    // The --out check passed; now the folder disappears before the round ends.
    await Deno.remove(gone, { recursive: true });
    const values = [["alice", ["--value", "40"]], ["bob", ["--value", "2"]]] as const;
    const peers = startPeers(processes, dir, address, values);
    const end = await finishStar({ hospital, address, peers });
    const [h, a, b] = [end.hospital, end.peers.get("alice")!, end.peers.get("bob")!];
    assert.equal(a.code, 0);
    assert.equal(b.code, 0);
    assert.equal(h.code, 1, "the help says: result printed, receipt not written, exit 1");
    assert.equal(JSON.parse(h.stdout).sum, 42);
    assert.match(
      h.stderr,
      new RegExp(
        `sumshare hospital: Cannot write the receipt to ${
          RegExp.escape(out)
        }: No such file or directory.*the result is printed above, without a receipt`,
      ),
    );
    assert.doesNotMatch(h.stderr, /a bug|^\s+at /m);
    assert.doesNotMatch(h.stderr, /receipt written/);
  });
});

Deno.test("receipts are written 0600, and an existing wider file is narrowed", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const fresh = join(dir, "fresh.json");
    await runRound(dir, ["--out", fresh], [["alice", ["--value", "1"]], ["bob", ["--value", "2"]]]);
    assert.equal((await Deno.stat(fresh)).mode! & 0o777, 0o600);

    const existing = join(dir, "existing.json");
    await Deno.writeTextFile(existing, "an old receipt, longer than nothing\n".repeat(500));
    await Deno.chmod(existing, 0o644);
    const summary = await runRound(dir, ["--out", existing], [
      ["alice", ["--value", "3"]],
      ["bob", ["--value", "4"]],
    ]);
    assert.equal((await Deno.stat(existing)).mode! & 0o777, 0o600);
    // Replaced whole, not written over the old text.
    const receipt = JSON.parse(await Deno.readTextFile(existing));
    assert.equal(receipt.session, summary["session"]);
    assert.deepEqual(receipt.result, { sum: 7 });
  } finally {
    await removeDir(dir);
  }
});
