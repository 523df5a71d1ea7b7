/**
 * Review 3's privacy breaks and the pinning fault, against the real service
 * (hospital --serve, agents, ask as CLI processes over mutual TLS):
 *
 * - F1: a sum over {eve, north, south}, then over {eve, south} with eve (a
 *   colluder) declaring a larger scale so that the round's scale changes:
 *   south must still refuse, because its data version is its data's alone.
 * - F2: whether an agent joins does not depend on its data: a histogram
 *   range short of the declared range is refused by every site alike, data
 *   outside the declared range refuses the round saying only "refused by
 *   policy" (the detail, where but not what, in the site's own log), and
 *   such rounds count towards max_rounds_per_day.
 * - F2 (one-shot): a plain `peer --input` refusing its data tells the
 *   hospital a fixed reason, not the line and the range.
 * - F13: an n-of-n round that stops after START (eve stops after JOIN)
 *   pins no contributor set: north and south answer over {north, south}.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import {
  ask,
  auditOf,
  freePort,
  resultOf,
  type Site,
  startAgent,
  startAgents,
  startService,
  waitForAudit,
  writeCsv,
  writeSite,
} from "./helpers.ts";

function errorOf(answer: { code: number; json: Record<string, unknown> }): string {
  assert.equal(answer.code, 1, JSON.stringify(answer.json));
  return String((answer.json["error"] as { message: string }).message);
}

Deno.test("service: changing the round's scale does not reset the answered set (no answer by difference)", async () => {
  const pki = await makePki(["hospital", "north", "south", "eve"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-privacy-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["182.0", "240.0", "199.0"] },
      { name: "south", column: "c", cells: ["210.0", "175.0"] },
      { name: "eve", column: "x", cells: ["100.0"] },
    ];
    const agents = await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south|eve) connected/, 3, 30_000);
    const first = resultOf(await ask(processes, control, ["--peers", "3", "sum", "chol"]));
    assert.deepEqual(first.contributors, ["eve", "north", "south"]);
    assert.equal(first.result["sum"], 1106);

    // North goes offline; eve comes back declaring scale 2, so the next round is at scale 2.
    agents.get("north")!.kill("SIGKILL");
    agents.get("eve")!.kill("SIGKILL");
    await hospital.waitForLines(/^(north|eve): /, 2, 30_000);
    const eve = { ...sites[2]!, scale: 2, cells: ["100.00"] };
    startAgent(processes, "eve2", await writeSite(dir, pki, eve, port));
    await hospital.waitForLines(/eve connected/, 2, 30_000);
    const second = errorOf(await ask(processes, control, ["--peers", "2", "sum", "chol"]));
    assert.match(second, /south: (input refused: )?refused by policy/);
    const [refusal] = await waitForAudit(dir, "south", "refused", 1);
    assert.match(String(refusal!["reason"]), /another contributor set \(eve, north, south\)/);
    const done = (await auditOf(dir, "south")).filter((e) => e["outcome"] === "done");
    assert.deepEqual(done.map((e) => e["session"]), [first.session], "south answered once");
  });
});

Deno.test("service: joining does not depend on the data: short histogram ranges and data outside the declared range are refused alike", async () => {
  const pki = await makePki(["hospital", "north", "south"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-privacy-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    // North's largest value is 240, south's 260: a histogram 0:250 would once
    // have been joined by north and refused by south.
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["182.0", "240.0", "199.0"] },
      { name: "south", column: "c", cells: ["210.0", "260.0"], policy: "max_rounds_per_day = 50" },
    ];
    await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south) connected/, 2, 30_000);

    for (const range of ["0:250:1", "0:300:1", "0:399.9:2"]) {
      const message = errorOf(await ask(processes, control, ["histogram", "chol", range]));
      assert.doesNotMatch(message, /cannot use|line|outside/, range);
    }
    for (const name of ["north", "south"]) {
      const refusals = await waitForAudit(dir, name, "refused", 3);
      for (const entry of refusals) {
        assert.match(String(entry["reason"]), /histogram's range does not cover/, name);
      }
      const state = JSON.parse(await Deno.readTextFile(join(dir, `${name}.state.json`)));
      assert.equal(state.joined.length, 0, "refused before the data was read");
    }
    const whole = resultOf(await ask(processes, control, ["histogram", "chol", "0:400:2"]));
    assert.deepEqual(whole.result["histogram"], [2, 3]);

    // South's file now holds a value above its declared max: every round is
    // refused, the hospital hearing only "refused by policy".
    await writeCsv(dir, { ...sites[1]!, cells: ["210.0", "400.5"] });
    for (let i = 0; i < 2; i++) {
      const message = errorOf(await ask(processes, control, ["sum", "chol"]));
      assert.match(message, /south: input refused: refused by policy/);
      assert.doesNotMatch(message, /cannot use|line|outside/);
    }
    const refusals = await waitForAudit(dir, "south", "refused", 5);
    for (const entry of refusals.slice(3)) {
      assert.match(
        String(entry["reason"]),
        /south\.csv line 3, column "c": outside chol's declared range/,
      );
      assert.doesNotMatch(String(entry["reason"]), /400\.5|4005/, "never the value");
    }
    const state = JSON.parse(await Deno.readTextFile(join(dir, "south.state.json")));
    assert.equal(state.joined.length, 3, "rounds that read the data count, refused or not");
  });
});

Deno.test("peer --input: a refused input tells the hospital a fixed reason; the line stays in the peer's log", async () => {
  const pki = await makePki(["hospital", "alice", "bob"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-privacy-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const port = freePort();
    const file = join(dir, "alice.txt");
    await Deno.writeTextFile(file, "3\n50\n7\n");
    const hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      `127.0.0.1:${port}`,
      "--peers",
      "2",
      "--certs",
      pki,
      "--max",
      "10",
      "--timeout",
      "10",
    ]);
    processes.push(hospital);
    await hospital.waitForLine(/listening on/, 30_000);
    const peer = (name: string, input: string[]) =>
      new CliProcess(name, [
        "peer",
        "--name",
        name,
        "--hospital",
        `127.0.0.1:${port}`,
        "--certs",
        pki,
        ...input,
      ]);
    const alice = peer("alice", ["--input", file]);
    const bob = peer("bob", ["--value", "5"]);
    processes.push(alice, bob);
    const [h, a] = await Promise.all([hospital.finish(), alice.finish(), bob.finish()]);
    assert.equal(a!.code, 1);
    assert.match(a!.stderr, /refused the round: input refused: .*line 2: outside \[0, R = 10\]/);
    assert.equal(h!.code, 1);
    assert.match(
      h!.stderr,
      /alice refused: "input refused: the input does not fit the round's terms"/,
    );
    assert.doesNotMatch(h!.stderr, /line 2|outside|rows/);
  });
});

Deno.test("service: an n-of-n round that stops after START pins no contributor set", async () => {
  // Eve must be stopped after its JOIN has left and before START reaches it. Nothing
  // observable says the JOIN has left (it is logged as it is queued), so a run in which
  // it had not (START never goes out) proves nothing and is run again, waiting longer.
  for (const settleMs of [1_000, 3_000, 6_000]) {
    if (await stopAfterJoin(settleMs)) return;
    console.log(`eve was stopped before its JOIN left; again, waiting ${settleMs} ms longer`);
  }
  assert.fail("eve's JOIN never left before it was stopped, in three runs");
});

/** One run of the test above; false when eve's JOIN had not left when it was stopped. */
async function stopAfterJoin(settleMs: number): Promise<boolean> {
  const pki = await makePki(["hospital", "north", "south", "eve"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-privacy-" });
  let done = false;
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["182.0", "240.0"] },
      { name: "south", column: "c", cells: ["210.0", "175.0"] },
      { name: "eve", column: "x", cells: ["100.0"] },
    ];
    const agents = await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south|eve) connected/, 3, 30_000);
    // North's and south's files become FIFOs: they block reading them, so eve joins
    // first, and is stopped before START can reach it.
    for (const name of ["north", "south"]) {
      await Deno.remove(join(dir, `${name}.csv`));
      const fifo = await new Deno.Command("mkfifo", { args: [join(dir, `${name}.csv`)] }).output();
      assert.ok(fifo.success, "mkfifo failed");
    }
    const asking = ask(processes, control, ["--peers", "3", "sum", "chol"]);
    const eve = agents.get("eve")!;
    await eve.waitForLine(/^sending join$/, 30_000);
    // "sending join" is logged as the write is queued: give it time to leave. Nothing
    // can move on meanwhile: START waits for north and south, blocked on their FIFOs.
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    eve.kill("SIGSTOP");
    // Feed north and south their data through the FIFOs: they join, START goes out.
    await Promise.all([sites[0]!, sites[1]!].map((site) => writeCsv(dir, site)));
    const stalled = await asking;
    assert.equal(stalled.code, 1, "nothing is released while eve is stopped");
    for (const name of ["north", "south"]) {
      try {
        await agents.get(name)!.waitForLine(/sending confirm/, 10_000);
      } catch {
        return; // START never went out: eve's JOIN had not left
      }
      await Deno.remove(join(dir, `${name}.csv`));
      await writeCsv(dir, sites.find((s) => s.name === name)!);
    }
    eve.kill("SIGKILL");
    await hospital.waitForLines(/^eve: /, 1, 30_000);
    // The same data, now over the two sites still up: nothing was ever released
    // over {eve, north, south}, so no set was pinned.
    const answer = resultOf(await ask(processes, control, ["--peers", "2", "sum", "chol"]));
    assert.deepEqual(answer.contributors, ["north", "south"]);
    assert.equal(answer.result["sum"], 807);
    done = true;
  });
  return done;
}

Deno.test("service: an agent upgraded from a format-1 state file still refuses a subset of what it answered", async () => {
  const pki = await makePki(["hospital", "north", "south"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-privacy-" });
  await scenario([pki, dir], async (processes: CliProcess[]) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startService(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["182.0", "240.0"] },
      { name: "south", column: "c", cells: ["210.0", "175.0"] },
    ];
    // What an older south recorded after a round at scale 2 over {east, north, south}:
    // format 1 hashed the round's scale and the numbers at it, in row order.
    const bytes = new Uint8Array(8 + 2 * 8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 2, true);
    view.setUint32(4, 2, true);
    [21000, 17500].forEach((v, i) => view.setFloat64(8 + 8 * i, v, true));
    const old = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    await Deno.writeTextFile(
      join(dir, "south.state.json"),
      JSON.stringify({
        format: "sumshare-agent-state/1",
        sessions: [],
        joined: [],
        answered: { chol: { [old]: ["east", "north", "south"] } },
      }),
      { mode: 0o600 },
    );
    await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/(north|south) connected/, 2, 30_000);
    const message = errorOf(await ask(processes, control, ["sum", "chol"]));
    assert.match(message, /south: refused by policy/);
    const [refusal] = await waitForAudit(dir, "south", "refused", 1);
    assert.match(String(refusal!["reason"]), /another contributor set \(east, north, south\)/);
  });
});
