/**
 * `sumshare certs --revoke NAME`: the CA's signed deny-list, loaded from next
 * to ca.crt (or --revoked FILE) by the hospital (one-shot and serving) and
 * every peer. A revoked party is refused by the hospital when it connects
 * (the round goes on without it) and by a peer that sees it in a roster
 * (the round is refused); a list that does not verify stops the command.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, removeDir, scenario, spawnHospital, spawnPeer } from "../helpers.ts";
import { ask, resultOf, type Site, startAgent, startService, writeSite } from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "east"];

async function copyDir(from: string, prefix: string): Promise<string> {
  const to = await Deno.makeTempDir({ prefix });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
  return to;
}

/** `sumshare certs --revoke NAMES --out DIR`. */
function revoke(dir: string, names: string) {
  return new CliProcess("certs", ["certs", "--revoke", names, "--out", dir]).finish();
}

Deno.test("revocation: the service refuses a revoked agent and the round goes on without it; a peer refuses a roster holding it; the one-shot hospital refuses it", async () => {
  const pki = await makePki(NAMES);
  // East's own copy has no list: east does not know, or does not say, it is revoked.
  const unaware = await copyDir(pki, "sumshare-unaware-");
  const dir = await Deno.makeTempDir({ prefix: "sumshare-revoked-" });
  await scenario([pki, unaware, dir], async (processes: CliProcess[]) => {
    const made = await revoke(pki, "east");
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /revoked east \(certificate serial [0-9a-f]+\)/);
    assert.match(made.stderr, /revoked\.json, sequence 1, 1 revoked/);
    const again = await revoke(pki, "east");
    assert.match(again.stderr, /east was revoked already/);
    assert.match(again.stderr, /sequence 2, 1 revoked/);

    // The serving hospital finds pki/revoked.json next to ca.crt.
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["180.5", "220.0"] },
      { name: "south", column: "c", cells: ["199.9"] },
      { name: "east", column: "mg", cells: ["150.0"] },
    ];
    for (const site of sites) {
      const certs = site.name === "east" ? unaware : pki;
      startAgent(processes, site.name, await writeSite(dir, certs, site, port));
    }
    await hospital.waitForLine(/refused a connection from \S+: .*"east" is revoked/, 30_000);
    await hospital.waitForLines(/(north|south) connected/, 2, 30_000);
    const sum = resultOf(await ask(processes, control, ["sum", "chol"]));
    assert.deepEqual(sum.contributors, ["north", "south"]);
    assert.equal(sum.result["sum"], 600.4);
    assert.ok(!hospital.stderrLines.some((l) => /^east connected/.test(l)));

    // A hospital without the list invites east: north (the agent's path, one round with
    // its config) and south (a plain one-shot peer), holding the list, refuse the roster.
    const blind = spawnHospital(unaware, 3, "--timeout", "10", "--scale", "1", "--max", "400");
    processes.push(blind);
    const address = await blind.address();
    const own = join(dir, "oneshot");
    await Deno.mkdir(own);
    const config = await writeSite(own, pki, sites[0]!, Number(address.split(":").pop()));
    const north = new CliProcess("north", ["peer", "--config", config]);
    const south = spawnPeer(pki, "south", "5", address, "--timeout", "10", "--scale", "1");
    const east = spawnPeer(unaware, "east", "7", address, "--timeout", "10", "--scale", "1");
    processes.push(north, south, east);
    const [b, n, s] = await Promise.all([blind.finish(), north.finish(), south.finish()]);
    for (const end of [n, s]) {
      assert.equal(end.code, 1, end.stderr);
      assert.match(end.stderr, /round aborted: the certificate of east is refused/);
    }
    assert.equal(b.code, 1);
    assert.doesNotMatch(b.stdout, /"sum"/);

    // The one-shot hospital with the list: east is refused when it connects; the others go on.
    const strict = spawnHospital(pki, 2, "--timeout", "10");
    processes.push(strict);
    const at = await strict.address();
    const late = spawnPeer(unaware, "east", "7", at, "--timeout", "10");
    processes.push(late);
    await strict.waitForLine(/refused a connection from \S+: .*"east" is revoked/);
    const others = [spawnPeer(pki, "north", "5", at), spawnPeer(pki, "south", "6", at)];
    processes.push(...others);
    const done = await strict.finish();
    assert.equal(done.code, 0, done.stderr);
    assert.equal(JSON.parse(done.stdout).sum, 11);
    assert.deepEqual(JSON.parse(done.stdout).contributors, ["north", "south"]);
  });
});

Deno.test("revocation: a list that does not verify is refused at load, and a revoked party cannot start", async () => {
  const pki = await makePki(NAMES);
  const other = await makePki(["hospital"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-revoked-" });
  try {
    assert.equal((await revoke(pki, "east")).code, 0);
    assert.equal((await revoke(other, "south")).code, 0);
    const path = join(pki, "revoked.json");
    const signed = JSON.parse(await Deno.readTextFile(path));

    const serve = (extra: string[]) =>
      new CliProcess("hospital", [
        "hospital",
        "--serve",
        "--listen",
        "127.0.0.1:0",
        "--control",
        join(dir, "c.sock"),
        "--certs",
        pki,
        ...extra,
      ]).finish(30_000);
    const cases: [string, unknown, RegExp][] = [
      ["east taken out", { ...signed, revoked: [] }, /the CA's signature does not verify/],
      ["an older sequence", { ...signed, sequence: 0 }, /sequence is not a whole number/],
      ["a later sequence", { ...signed, sequence: 9 }, /the CA's signature does not verify/],
      [
        "another CA's list",
        JSON.parse(await Deno.readTextFile(join(other, "revoked.json"))),
        /issued for another CA/,
      ],
      ["an extra field", { ...signed, note: "x" }, /exactly the fields/],
    ];
    for (const [what, doc, reason] of cases) {
      const file = join(dir, "tampered.json");
      await Deno.writeTextFile(file, JSON.stringify(doc));
      const end = await serve(["--revoked", file]);
      assert.equal(end.code, 1, `${what}: ${end.stderr}`);
      assert.match(end.stderr, reason, what);
      assert.doesNotMatch(end.stderr, /listening on/, what);
    }
    // Tampered in place, next to ca.crt: found and refused, by the hospital and by an agent.
    await Deno.writeTextFile(path, JSON.stringify({ ...signed, revoked: [] }));
    const found = await serve([]);
    assert.equal(found.code, 1);
    assert.match(found.stderr, /Invalid revocation list \S+revoked\.json: the CA's signature/);
    const config = await writeSite(dir, pki, { name: "north", column: "c", cells: ["1"] }, 1);
    const agent = await new CliProcess("north", ["peer", "--serve", "--config", config]).finish();
    assert.equal(agent.code, 1);
    assert.match(agent.stderr, /the CA's signature does not verify/);
    const missing = await serve(["--revoked", join(dir, "nowhere.json")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot read the revocation list \S+nowhere\.json/);

    // The genuine list again: the revoked party itself cannot start.
    await Deno.writeTextFile(path, JSON.stringify(signed));
    const east = await writeSite(dir, pki, { name: "east", column: "c", cells: ["1"] }, 1);
    const self = await new CliProcess("east", ["peer", "--serve", "--config", east]).finish();
    assert.equal(self.code, 1);
    assert.match(self.stderr, /the certificate of "east" is revoked/);
  } finally {
    for (const d of [pki, other, dir]) await removeDir(d);
  }
});
