/**
 * `sumshare peer --config FILE` without `--serve`: one round against a
 * one-shot hospital with the config's credentials, hospital, data and policy
 * (the agent's own path: its audit log records the round), the query's
 * variable from `--variable` or the config's only one.
 */

import assert from "node:assert/strict";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import { auditOf, freePort, plain, type Site, writeSite } from "./helpers.ts";

const NAMES = ["hospital", "north", "south"];

Deno.test("peer --config: one round with the config's data, started before the hospital; the audit log has it", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-oneshot-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const port = freePort();
    const sites: Site[] = [
      { name: "north", column: "cholesterol_mg_dl", cells: ["180.5", "220.0", "NA"] },
      // South holds two variables: its round names one with --variable.
      {
        name: "south",
        column: "chol",
        cells: ["199.9", "201.3"],
        more: '[data.age]\nfile = "south.csv"\ncolumn = "id"\nmax = 120\n',
      },
    ];
    sites[0]!.variable = 'missing = "skip"';
    const configs = [];
    for (const site of sites) configs.push(await writeSite(dir, pki, site, port));

    // Two variables and no --variable: a usage error naming both, before any connection.
    const ambiguous = await new CliProcess("south", ["peer", "--config", configs[1]!]).finish();
    assert.equal(ambiguous.code, 2, ambiguous.stderr);
    assert.match(ambiguous.stderr, /Missing --variable: \S+south\.toml holds chol, age/);
    const unknown = await new CliProcess("south", [
      "peer",
      "--config",
      configs[1]!,
      "--variable",
      "weight",
    ]).finish();
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /Invalid --variable: .* has no \[data\.weight\]/);

    // The peers first: they retry until the hospital listens.
    const north = new CliProcess("north", ["peer", "--config", configs[0]!, "--json"]);
    const south = new CliProcess("south", [
      "peer",
      "--config",
      configs[1]!,
      "--variable",
      "chol",
      "--json",
    ]);
    processes.push(north, south);
    await north.waitForLine(/cannot reach the hospital.*retrying/);
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      `127.0.0.1:${port}`,
      "--peers",
      "2",
      "--certs",
      pki,
      "--query",
      "mean",
      "--scale",
      "1",
      "--max",
      "400",
      "--json",
      "--timeout",
      "10",
    ]);
    processes.push(hospital);
    const [h, n, s] = await Promise.all([hospital, north, south].map((p) => p.finish()));
    assert.equal(h!.code, 0, h!.stderr);
    assert.equal(n!.code, 0, n!.stderr);
    assert.equal(s!.code, 0, s!.stderr);
    const report = JSON.parse(h!.stdout);
    const expected = plain([1805n, 2200n, 1999n, 2013n], { low: 0n, high: 1n, count: 1 });
    assert.equal(report.result.mean, expected.mean);
    assert.equal(report.result.count, 4, "north's NA cell is skipped");
    for (const [name, end] of [["north", n!], ["south", s!]] as const) {
      const peer = JSON.parse(end.stdout);
      assert.equal(peer.status, "done");
      assert.equal(peer.variable, "chol");
      assert.equal(peer.session, report.session);
      assert.deepEqual(peer.contributors, ["north", "south"]);
      const audit = await auditOf(dir, name);
      assert.equal(audit.length, 1);
      assert.equal(audit[0]!["outcome"], "done");
      assert.equal(audit[0]!["session"], report.session);
      assert.equal(audit[0]!["query"], "mean");
    }
  });
});

Deno.test("peer --config: the config's policy refuses a one-shot round it does not allow", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-oneshot-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      "2",
      "--certs",
      pki,
      "--query",
      "histogram:0:400:4",
      "--scale",
      "1",
      "--max",
      "400",
      "--timeout",
      "10",
    ]);
    processes.push(hospital);
    const port = Number((await hospital.address()).split(":").pop());
    const north = await writeSite(dir, pki, {
      name: "north",
      column: "chol",
      cells: ["180.5"],
      variable: 'allow = ["sum", "mean"]',
    }, port);
    const south = await writeSite(dir, pki, { name: "south", column: "c", cells: ["1.0"] }, port);
    const peers = [
      new CliProcess("north", ["peer", "--config", north]),
      new CliProcess("south", ["peer", "--config", south]),
    ];
    processes.push(...peers);
    const [h, n] = await Promise.all([hospital, ...peers].map((p) => p.finish()));
    assert.equal(h!.code, 1);
    assert.match(h!.stderr, /north refused: "input refused: refused by policy"/);
    assert.doesNotMatch(h!.stderr, /histogram queries/, "the hospital hears only the refusal");
    assert.equal(n!.code, 1);
    assert.match(n!.stderr, /refused by policy: chol does not answer histogram queries/);
    const audit = await auditOf(dir, "north");
    assert.equal(audit[0]!["outcome"], "refused");
  });
});

Deno.test("peer --config: the hospital never comes: the join window ends the wait", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-oneshot-" });
  await scenario([pki, dir], async () => {
    const config = await writeSite(
      dir,
      pki,
      { name: "north", column: "c", cells: ["1"] },
      freePort(),
    );
    const started = performance.now();
    const end = await new CliProcess("north", [
      "peer",
      "--config",
      config,
      "--join-timeout",
      "1.5",
    ]).finish(20_000);
    assert.equal(end.code, 1, end.stderr);
    assert.match(end.stderr, /Timed out after 1\.5 s waiting for the hospital's invitation/);
    assert.ok(performance.now() - started < 15_000);
  });
});
