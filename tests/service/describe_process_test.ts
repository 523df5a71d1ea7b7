/**
 * One connected agent must not slow or block every question (review 3, F4;
 * docs/protocol.md §16 rule 2), with real processes: the CLI's serving
 * hospital, `peer --serve` agents, `ask` through the control socket, and
 * eve, an authenticated party that either never answers `describe` (a
 * small program on lib/net/client.ts) or declares an absurd range (a stock
 * agent with scale 15 and max_rows 2^31).
 *
 * - Silent eve: `ask --peers 2` goes on once two holders answered; `ask`
 *   without `--peers` waits the short describe deadline (3 s), not the
 *   phase deadline (20 s here).
 * - Absurd eve: she is left out, the hospital logs who and why (no values),
 *   the asker is told who, and the round runs over the others; so is eve
 *   declaring the narrowest range at scale 15 over 2^31 rows (review 4,
 *   R4-2, which left out every honest holder instead), and eve declaring a
 *   vector of another length than the others'.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CliProcess, makePki, scenario } from "../helpers.ts";
import {
  ask,
  resultOf,
  scriptConnect,
  type Site,
  startAgent,
  startAgents,
  startScript,
  writeSite,
} from "./helpers.ts";

const NAMES = ["hospital", "north", "south", "eve"];
const SITES: Site[] = [
  { name: "north", column: "chol", cells: ["180.5", "220.0"] },
  { name: "south", column: "chol", cells: ["199.9"] },
];
const SUM = 600.4;
/** A phase deadline far above the describe deadline, so the two cannot be confused. */
const PHASE_S = 20;

async function startHospital(
  processes: CliProcess[],
  pki: string,
  control: string,
): Promise<{ hospital: CliProcess; port: number }> {
  const hospital = new CliProcess("hospital", [
    "hospital",
    "--serve",
    "--listen",
    "127.0.0.1:0",
    "--control",
    control,
    "--certs",
    pki,
    "--timeout",
    String(PHASE_S),
  ]);
  processes.push(hospital);
  const address = (await hospital.waitForLine(/listening on (\S+)$/, 30_000))[1]!;
  await hospital.waitForLine(/control socket /, 10_000);
  return { hospital, port: Number(address.split(":").pop()) };
}

/** Eve as a program that authenticates, reads everything and answers nothing. */
async function startSilentEve(
  processes: CliProcess[],
  dir: string,
  pki: string,
  port: number,
): Promise<CliProcess> {
  const script = join(dir, "silent_eve.ts");
  await Deno.writeTextFile(
    script,
    `${scriptConnect(pki, port, "eve")}
console.error("eve: connected, answering nothing");
try {
  for (;;) await conn.readFrame(stop);
} catch (error) {
  console.error("eve: " + (error as Error).message);
} finally {
  conn.close();
}
`,
  );
  return await startScript(processes, "eve", script, /eve: connected/);
}

/** The seconds the hospital's describe step of `session` took, and whom it did not wait for. */
function describeStep(
  hospital: CliProcess,
  session: string,
): { seconds: number; unanswered: string } {
  const line = hospital.stderrLines.find((l) =>
    l.startsWith(`round ${session}: `) && l.includes("answered describe in")
  );
  assert.ok(line, `no describe line for ${session}\n${hospital.log()}`);
  const [, seconds, unanswered] = /answered describe in ([\d.]+) s(?:; not waited for: (.*))?$/
    .exec(line)!;
  return { seconds: Number(seconds), unanswered: unanswered ?? "" };
}

Deno.test("describe: a silent agent delays an ask by the short describe deadline at most", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-describe-" });
  await scenario([pki, dir], async (processes) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startHospital(processes, pki, control);
    await startAgents(processes, dir, pki, SITES, port);
    await startSilentEve(processes, dir, pki, port);
    await hospital.waitForLines(/^(north|south|eve) connected/, 3, 30_000);

    // --peers 2: two holders answered, nothing more to wait for.
    const named = resultOf(await ask(processes, control, ["--peers", "2", "sum", "chol"]));
    assert.equal(named.result["sum"], SUM);
    assert.deepEqual(named.contributors, ["north", "south"]);
    const first = describeStep(hospital, named.session);
    assert.equal(first.unanswered, "eve");
    assert.ok(first.seconds < 1.5, `--peers 2 waited ${first.seconds} s for describe answers`);

    // No --peers: the short describe deadline, not the 20 s phase deadline.
    const started = performance.now();
    const open = resultOf(await ask(processes, control, ["sum", "chol"]));
    const took = (performance.now() - started) / 1000;
    assert.equal(open.result["sum"], SUM);
    assert.deepEqual(open.contributors, ["north", "south"]);
    const second = describeStep(hospital, open.session);
    assert.equal(second.unanswered, "eve");
    assert.ok(
      second.seconds >= 2.9 && second.seconds < 6,
      `describe took ${second.seconds} s, not the 3 s deadline`,
    );
    assert.ok(took < PHASE_S, `ask took ${took} s`);
  });
});

Deno.test("describe: an agent declaring a range no round can hold is left out; the ask succeeds over the others", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-describe-" });
  await scenario([pki, dir], async (processes) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startHospital(processes, pki, control);
    await startAgents(processes, dir, pki, SITES, port);
    // A stock agent, configured absurdly (scale 15, up to 2^31 rows): R would pass p.
    const eve: Site = {
      name: "eve",
      column: "chol",
      cells: ["0.5"],
      scale: 15,
      max: "1",
      variable: "max_rows = 2147483648",
    };
    startAgent(processes, "eve", await writeSite(dir, pki, eve, port));
    await hospital.waitForLines(/^(north|south|eve) connected/, 3, 30_000);

    const answer = await ask(processes, control, ["sum", "chol"]);
    const report = resultOf(answer);
    assert.equal(report.result["sum"], SUM);
    assert.deepEqual(report.contributors, ["north", "south"]);
    assert.deepEqual(answer.json["leftOut"], ["eve"]);
    assert.equal(describeStep(hospital, report.session).unanswered, "");
    const line = hospital.stderrLines.find((l) => l.includes(`left out eve`));
    assert.ok(line, hospital.log());
    assert.match(line, /^round [0-9a-f]{32}: left out eve: its declared range .* does not fit/);
    // Who and why, never the declared values.
    assert.doesNotMatch(hospital.log(), /2147483648|1000000000000000/);

    // An asker who needs all three is told who was left out.
    const three = await ask(processes, control, ["--peers", "3", "sum", "chol"]);
    assert.notEqual(three.code, 0);
    assert.match(
      JSON.stringify(three.json),
      /2 peer\(s\) for \\"chol\\" declare a range that fits; 3 needed \(left out: eve\)/,
    );
  });
});

Deno.test("describe: review 4's wide eve (scale 15, max 10^-15, 2^31 rows) and a vector of another length leave out only eve", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-describe-" });
  await scenario([pki, dir], async (processes) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startHospital(processes, pki, control);
    // Each site also holds a vector v; eve's has another length than north's and south's.
    const vector = (name: string, values: number[]) => {
      Deno.writeTextFileSync(join(dir, `${name}.json`), JSON.stringify(values));
      return `[data.v]\nfile = "${name}.json"\nmax = 100\ndimension = ${values.length}\n` +
        `allow = ["vector"]\n`;
    };
    const sites: Site[] = [
      { ...SITES[0]!, more: vector("north", [1, 2]) },
      { ...SITES[1]!, more: vector("south", [10, 20]) },
    ];
    await startAgents(processes, dir, pki, sites, port);
    // A stock agent: the narrowest range there is (one unit at scale 15) over 2^31 rows, which
    // sorted first by width at scale 15 and was kept while north and south were left out.
    const eve: Site = {
      name: "eve",
      column: "chol",
      cells: ["0"],
      scale: 15,
      max: '"0.000000000000001"',
      variable: "max_rows = 2147483648",
      more: vector("eve", [1, 2, 3]),
    };
    startAgent(processes, "eve", await writeSite(dir, pki, eve, port));
    await hospital.waitForLines(/^(north|south|eve) connected/, 3, 30_000);

    const answer = await ask(processes, control, ["--peers", "2", "mean", "chol"]);
    const report = resultOf(answer);
    assert.equal(report.result["sum"], SUM);
    assert.deepEqual(report.contributors, ["north", "south"]);
    assert.deepEqual(answer.json["leftOut"], ["eve"]);
    const lines = hospital.stderrLines.filter((l) =>
      l.includes(`round ${report.session}: left out`)
    );
    assert.equal(lines.length, 1, hospital.log());
    assert.match(lines[0]!, /left out eve: its declared range .* does not fit/);

    const sum = await ask(processes, control, ["--peers", "2", "vector", "v"]);
    const summed = resultOf(sum);
    assert.deepEqual(summed.result["vector"], [11, 22]);
    assert.deepEqual(summed.contributors, ["north", "south"]);
    assert.deepEqual(sum.json["leftOut"], ["eve"]);
    assert.ok(
      hospital.stderrLines.some((l) =>
        l.startsWith(`round ${summed.session}: left out eve: its declared dimension`)
      ),
      hospital.log(),
    );
    // Who and why, never the declared values.
    assert.doesNotMatch(hospital.log(), /2147483648/);
  });
});

Deno.test("describe: a histogram edge that needs scale 1 keeps a scale-0 holder with a scale-1 one; only the absurd eve is left out (review 5, R5-3)", async () => {
  // histogram:0:9.5:19 has no layout at scale 0. North (scale 0) fits only at south's scale 1;
  // the leave-out once tried it at scale 0 alone, refused it, and left it out with eve.
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-describe-" });
  await scenario([pki, dir], async (processes) => {
    const control = join(dir, "control.sock");
    const { hospital, port } = await startHospital(processes, pki, control);
    const sites: Site[] = [
      { name: "north", column: "chol", cells: ["3", "7"], scale: 0, max: "9" },
      { name: "south", column: "chol", cells: ["2.5"], scale: 1, max: '"9.4"' },
      { name: "eve", column: "chol", cells: ["0"], scale: 15, max: "1" },
    ];
    await startAgents(processes, dir, pki, sites, port);
    await hospital.waitForLines(/^(north|south|eve) connected/, 3, 30_000);
    const answer = await ask(processes, control, ["--peers", "2", "histogram", "chol", "0:9.5:19"]);
    const report = resultOf(answer);
    assert.deepEqual(report.contributors, ["north", "south"]);
    assert.deepEqual(answer.json["leftOut"], ["eve"]);
    // Bins of width 0.5 from 0: 2.5 in bin 5, 3 in bin 6, 7 in bin 14.
    const counts = report.result["histogram"] as number[];
    assert.equal(counts.length, 19);
    assert.deepEqual(
      counts.flatMap((c, i) => c ? [[i, c]] : []),
      [[5, 1], [6, 1], [14, 1]],
    );
  });
});
