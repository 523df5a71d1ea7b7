/**
 * Receipts through the CLI, on real star rounds: `sumshare hospital --out`
 * writes a v2 receipt readable by the owner only (0600) that `sumshare
 * verify` accepts (exit 0, a VALID line); a tampered one, a receipt with a
 * key twice, and an unreadable file exit 1. A threshold round in which a
 * peer died also yields a receipt that verifies, over exactly the survivors.
 *
 * The field-by-field checks of v2 receipts (lib/receipt.ts) are in
 * tests/receipt_verify_test.ts; this file checks the CLI's use of them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidReceiptError, parseReceipt, verifyStarReceipt } from "../lib/receipt.ts";
import { CliProcess, makePki, removeDir, scenario } from "./helpers.ts";
import { runRound } from "./scenarios.ts";
import { ended, resultOf, startRound } from "./star_helpers.ts";

/** `sumshare verify FILE --ca CA [--json]`: exit code and output. */
async function verify(
  dir: string,
  file: string,
  ...extra: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await new CliProcess("verify", ["verify", file, "--ca", join(dir, "ca.crt"), ...extra])
    .finish(30_000);
}

Deno.test("a real round's receipt is 0600 and verifies; tampered, doubled keys and unreadable files exit 1", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const file = join(dir, "receipt.json");
    const summary = await runRound(dir, ["--out", file], [
      ["alice", ["--value", "5"]],
      ["bob", ["--value", "6"]],
    ]);
    assert.equal(summary["sum"], 11);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600, "the receipt is the owner's only");
    const receipt = await Deno.readTextFile(file);

    const ok = await verify(dir, file);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(
      ok.stdout,
      /^VALID: sum 11 over 2 contributors \(alice, bob\), session [0-9a-f]{32}, n-of-n of 2 participants, signed by hospital/,
    );
    const json = await verify(dir, file, "--json");
    assert.equal(json.code, 0);
    assert.equal(JSON.parse(json.stdout).valid, true);

    // One changed value: the published result.
    const tampered = JSON.parse(receipt);
    tampered.result.sum = 12;
    await Deno.writeTextFile(file, JSON.stringify(tampered, null, 2));
    const bad = await verify(dir, file, "--json");
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    const verdict = JSON.parse(bad.stdout);
    assert.equal(verdict.valid, false);
    assert.match(verdict.reason, /\S/);
    assert.doesNotMatch(bad.stderr, /a bug|^\s+at /m);

    // A key twice: JSON.parse would keep the later, honest value, so only
    // a duplicate-key check can refuse it.
    const doubled = receipt.replace("{\n", '{\n  "result": {"sum": 123456},\n');
    assert.notEqual(doubled, receipt);
    assert.deepEqual(JSON.parse(doubled), JSON.parse(receipt));
    await assert.rejects(
      async () =>
        await verifyStarReceipt(
          parseReceipt(doubled),
          await Deno.readTextFile(join(dir, "ca.crt")),
        ),
      InvalidReceiptError,
    );
    await Deno.writeTextFile(file, doubled);
    const twice = await verify(dir, file);
    assert.equal(twice.code, 1, twice.stdout + twice.stderr);
    assert.match(twice.stdout, /^NOT VALID: .*"result".*twice/);

    await Deno.writeTextFile(file, "not json");
    const junk = await verify(dir, file);
    assert.equal(junk.code, 1);
    assert.match(junk.stdout, /^NOT VALID: /);

    // A file that cannot be read fails the command: exit 1, the reason on
    // stderr, no verdict and no usage error.
    for (const path of [join(dir, "missing.json"), dir]) {
      const unreadable = await verify(dir, path);
      assert.equal(unreadable.code, 1, unreadable.stderr);
      assert.equal(unreadable.stdout, "");
      assert.match(unreadable.stderr, /^sumshare verify: Cannot read receipt /);
      assert.doesNotMatch(unreadable.stderr, /a bug|Try 'sumshare/);
    }
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a threshold round that lost a peer writes a receipt that verifies over exactly the survivors", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "carol"]);
  const file = join(dir, "receipt.json");
  await scenario([dir], async (processes: CliProcess[]) => {
    const round = await startRound(processes, dir, { alice: 5, bob: 6, carol: 7 }, {
      hospitalArgs: ["--threshold", "2", "--out", file],
    });
    const carol = round.peers.get("carol")!;
    await carol.waitForLine(/^sending sealed$/);
    carol.kill();
    const result = resultOf(await ended(round.hospital, 60_000));
    assert.deepEqual(result.contributors, ["alice", "bob"]);
    assert.equal(result.sum, 11);
    const ok = await verify(dir, file);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(
      ok.stdout,
      /^VALID: sum 11 over 2 contributors \(alice, bob\), .*threshold 2 of 3 participants/,
    );
  });
});
