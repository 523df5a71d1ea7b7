/**
 * End to end: the hospital and the peers as separate OS processes, started
 * through the CLI, each peer on one mutual-TLS connection to the hospital
 * (the star: a peer never listens), with certificates from the project's
 * own PKI code.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertValueNotPrinted,
  CliProcess,
  dumpLogs,
  makePki,
  removeDir,
  stopAll,
} from "./helpers.ts";

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
  const processes: CliProcess[] = [];
  try {
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      "127.0.2.10:0",
      "--peers",
      "4",
      "--certs",
      dir,
      "--json",
      "--out",
      out,
      "--max",
      "1000000000000",
      "--max-rows",
      "1",
    ]);
    processes.push(hospital);
    const address = await hospital.address();
    assert.match(address, /^127\.0\.2\.10:[1-9][0-9]*$/);
    names.forEach((name, i) =>
      processes.push(
        new CliProcess(name, [
          "peer",
          "--name",
          name,
          "--value",
          values[i]!.toString(),
          "--hospital",
          address,
          "--certs",
          dir,
          "--json",
        ]),
      )
    );
    const results = await Promise.all(processes.map((p) => p.finish()));
    try {
      results.forEach((r, i) => assert.equal(r.code, 0, `${processes[i]!.name} exited ${r.code}`));
      const report = JSON.parse(results[0]!.stdout);
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
        assert.match(results[0]!.stderr, new RegExp(`^${name} connected \\([1-4] of 4\\)$`, "m"));
      }
      for (let i = 1; i < results.length; i++) {
        const peer = JSON.parse(results[i]!.stdout);
        assert.equal(peer.status, "done");
        assert.equal(peer.session, report.session);
        assert.deepEqual(peer.contributors, report.participants);
        // A peer prints neither the sum nor any value, its own included.
        const text = results[i]!.stdout + results[i]!.stderr;
        assertValueNotPrinted(text, expected, `${names[i - 1]} printed the sum`);
        for (const v of values.filter((v) => v !== 0n)) assertValueNotPrinted(text, v);
        // Each peer only connected out, to the hospital's address, and never listened.
        assert.match(
          results[i]!.stderr,
          new RegExp(
            `^connected to the hospital at ${RegExp.escape(address)}; waiting for a round$`,
            "m",
          ),
        );
        assert.doesNotMatch(results[i]!.stderr, /listening on/);
      }
      for (const v of values.filter((v) => v !== 0n)) {
        assertValueNotPrinted(results[0]!.stderr, v);
      }
    } catch (error) {
      dumpLogs(processes);
      throw error;
    }
  } finally {
    await stopAll(processes);
    await removeDir(dir);
  }
});

Deno.test("plain output: the hospital prints the sum, with --ca/--cert/--key credentials", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "charlie"]);
  const processes: CliProcess[] = [];
  const files = (name: string) => [
    "--ca",
    join(dir, "ca.crt"),
    "--cert",
    join(dir, `${name}.crt`),
    "--key",
    join(dir, `${name}.key`),
  ];
  try {
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      "3",
      ...files("hospital"),
    ]);
    processes.push(hospital);
    const address = await hospital.address();
    [["alice", "12"], ["bob", "30"], ["charlie", "7"]].forEach(([name, value]) =>
      processes.push(
        new CliProcess(name!, [
          "peer",
          "--name",
          name!,
          "--value",
          value!,
          "--hospital",
          address,
          ...files(name!),
        ]),
      )
    );
    const results = await Promise.all(processes.map((p) => p.finish()));
    try {
      results.forEach((r, i) => assert.equal(r.code, 0, processes[i]!.name));
      assert.equal(results[0]!.stdout, "sum: 49\nover 3 of 3 peers: alice, bob, charlie\n");
    } catch (error) {
      dumpLogs(processes);
      throw error;
    }
  } finally {
    await stopAll(processes);
    await removeDir(dir);
  }
});

Deno.test("sumshare run --values 12,30,7 prints a timeline and a matching sum", async () => {
  const demo = new CliProcess("run", ["run", "--values", "12,30,7"]);
  let result: Awaited<ReturnType<CliProcess["finish"]>> | undefined;
  try {
    result = await demo.finish(60_000);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /secure sum \(from the hospital\): 49\n/);
    assert.match(result.stdout, /plaintext total \(demo only\): +49\n/);
    assert.match(result.stdout, /match: yes/);
    const address = /s {2}hospital +listening on (127\.0\.0\.1:\d+)\n/.exec(result.stdout)?.[1];
    assert.ok(address !== undefined, "the hospital announces its address");
    for (const party of ["alice", "bob", "charlie"]) {
      assert.match(
        result.stdout,
        new RegExp(`s  ${party} +connected to the hospital at ${RegExp.escape(address)}; waiting`),
      );
      assert.match(result.stdout, new RegExp(`s  hospital +${party} connected \\([1-3] of 3\\)`));
      assert.match(result.stdout, new RegExp(`s  ${party} +session done over 3 participants`));
    }
    assert.match(result.stdout, /s {2}hospital +round done over 3 participants/);
  } catch (error) {
    console.error(result?.stdout, result?.stderr);
    throw error;
  } finally {
    await stopAll([demo]);
  }
});

Deno.test("sumshare run --peers 5 uses random values and still matches", async () => {
  const demo = new CliProcess("run", ["run", "--peers", "5"]);
  try {
    const result = await demo.finish(60_000);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const secure = /secure sum \(from the hospital\): (\d+)/.exec(result.stdout)?.[1];
    const plain = /plaintext total \(demo only\): +(\d+)/.exec(result.stdout)?.[1];
    assert.ok(secure !== undefined && secure === plain, result.stdout);
    assert.match(result.stdout, /erin +session done over 5 participants/);
  } finally {
    await stopAll([demo]);
  }
});
