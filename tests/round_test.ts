/**
 * End to end: the hospital and the peers as separate OS processes, started
 * through the CLI, each peer on one mutual-TLS connection to the hospital
 * (the star: a peer never listens), with certificates from the project's
 * own PKI code.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertValueNotPrinted, makePki, scenario } from "./helpers.ts";
import { finishStar, runDemo, startStar } from "./scenarios.ts";

const HOSTS = [
  "localhost",
  "127.0.0.1",
  "127.0.2.1",
  "127.0.2.2",
  "127.0.2.3",
  "127.0.2.4",
  "127.0.2.10",
];

Deno.test("a hospital and 4 peers in separate processes compute the exact sum", async () => {
  const names = ["alice", "bob", "charlie", "dave"];
  // Distinctive values, so the test can check none of them is ever printed.
  const values = [987_654_321_001n, 123_456_789_002n, 555_555_555_003n, 0n];
  const dir = await makePki(["hospital", ...names], HOSTS);
  const out = join(dir, "result.json");
  await scenario([dir], async (processes) => {
    const round = await startStar(
      processes,
      dir,
      names.map((name, i) => [name, ["--value", values[i]!.toString(), "--json"]]),
      {
        listen: "127.0.2.10:0",
        hospitalArgs: ["--out", out, "--max", "1000000000000", "--max-rows", "1"],
      },
    );
    const address = round.address;
    assert.match(address, /^127\.0\.2\.10:[1-9][0-9]*$/);
    const end = await finishStar(round);
    assert.equal(end.hospital.code, 0, `the hospital exited ${end.hospital.code}`);
    for (const [name, r] of end.peers) assert.equal(r.code, 0, `${name} exited ${r.code}`);
    const report = JSON.parse(end.hospital.stdout);
    const expected = values.reduce((a, b) => a + b, 0n);
    assert.equal(BigInt(report.sum), expected);
    assert.match(report.session, /^[0-9a-f]{32}$/);
    assert.deepEqual(report.participants, ["alice", "bob", "charlie", "dave"]);
    assert.equal(report.p, "4503599627370449");
    // --out writes the receipt: the same round, with the evidence.
    const receipt = JSON.parse(await Deno.readTextFile(out));
    assert.equal(receipt.session, report.session);
    assert.deepEqual(receipt.result, { sum: Number(expected) });
    assert.deepEqual(receipt.set, report.participants);
    assert.deepEqual(report.contributors, report.participants);
    // The hospital saw each peer join over its one connection.
    for (const name of names) {
      assert.match(end.hospital.stderr, new RegExp(`^${name} connected \\([1-4] of 4\\)$`, "m"));
    }
    for (const [name, r] of end.peers) {
      const peer = JSON.parse(r.stdout);
      assert.equal(peer.status, "done");
      assert.equal(peer.session, report.session);
      assert.deepEqual(peer.contributors, report.participants);
      // A peer prints neither the sum nor any value, its own included.
      const text = r.stdout + r.stderr;
      assertValueNotPrinted(text, expected, `${name} printed the sum`);
      for (const v of values.filter((v) => v !== 0n)) assertValueNotPrinted(text, v);
      // Each peer only connected out, to the hospital's address, and never listened.
      assert.match(
        r.stderr,
        new RegExp(
          `^connected to the hospital at ${RegExp.escape(address)}; waiting for a round$`,
          "m",
        ),
      );
      assert.doesNotMatch(r.stderr, /listening on/);
    }
    for (const v of values.filter((v) => v !== 0n)) {
      assertValueNotPrinted(end.hospital.stderr, v);
    }
  });
});

Deno.test("plain output: the hospital prints the sum, with --ca/--cert/--key credentials", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "charlie"]);
  const files = (name: string) => [
    "--ca",
    join(dir, "ca.crt"),
    "--cert",
    join(dir, `${name}.crt`),
    "--key",
    join(dir, `${name}.key`),
  ];
  await scenario([dir], async (processes) => {
    const peers = [["alice", "12"], ["bob", "30"], ["charlie", "7"]] as const;
    const end = await finishStar(
      await startStar(processes, dir, peers.map(([name, value]) => [name, ["--value", value]]), {
        json: false,
        credentials: files,
      }),
    );
    assert.equal(end.hospital.code, 0, "hospital");
    for (const [name, r] of end.peers) assert.equal(r.code, 0, name);
    assert.equal(end.hospital.stdout, "sum: 49\nover 3 of 3 peers: alice, bob, charlie\n");
  });
});

Deno.test("sumshare run --values 12,30,7 prints a timeline and a matching sum", async () => {
  const stdout = await runDemo(["--values", "12,30,7"]);
  assert.match(stdout, /secure sum \(from the hospital\): 49\n/);
  assert.match(stdout, /plaintext total \(demo only\): +49\n/);
  assert.match(stdout, /match: yes/);
  const address = /s {2}hospital +listening on (127\.0\.0\.1:\d+)\n/.exec(stdout)?.[1];
  assert.ok(address !== undefined, "the hospital announces its address");
  for (const party of ["alice", "bob", "charlie"]) {
    assert.match(
      stdout,
      new RegExp(`s  ${party} +connected to the hospital at ${RegExp.escape(address)}; waiting`),
    );
    assert.match(stdout, new RegExp(`s  hospital +${party} connected \\([1-3] of 3\\)`));
    assert.match(stdout, new RegExp(`s  ${party} +session done over 3 participants`));
  }
  assert.match(stdout, /s {2}hospital +round done over 3 participants/);
});

Deno.test("sumshare run --peers 5 uses random values and still matches", async () => {
  const stdout = await runDemo(["--peers", "5"]);
  const secure = /secure sum \(from the hospital\): (\d+)/.exec(stdout)?.[1];
  const plain = /plaintext total \(demo only\): +(\d+)/.exec(stdout)?.[1];
  assert.ok(secure !== undefined && secure === plain, stdout);
  assert.match(stdout, /erin +session done over 5 participants/);
});
