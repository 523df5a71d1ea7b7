/**
 * Threshold mode under random faults, with real processes: for N from 3 to
 * 10 and two of the T the privacy floor allows, random values, and a random subset
 * of peers killed at random points of their progress. The outcome is always
 * either the sum over exactly the contributors the hospital reports, or an
 * abort because too few remain: never anything else.
 */
import assert from "node:assert/strict";
import { demoPeerNames } from "../lib/demo.ts";
import { type CliProcess, dumpLogs, makePki, mulberry32, removeDir, stopAll } from "./helpers.ts";
import { startStar } from "./scenarios.ts";
import { assertNoResult } from "./star_helpers.ts";

/**
 * A seeded PRNG (mulberry32) chooses the scenario, so a failure can be
 * replayed from the printed seed. Protocol randomness never comes from here:
 * the product uses Web Crypto only.
 */

const SEED = crypto.getRandomValues(new Uint32Array(1))[0]!;
/**
 * Every fault here is a SIGKILL, which the hospital sees at once as a closed
 * connection, so a round waits for a deadline only when a peer dies between
 * its handshake and the hospital counting it (the join deadline). The
 * timeout mostly bounds the join, which on a loaded machine (eleven
 * processes starting) took over 4 s.
 */
const TIMEOUT_S = 8;
/** The join window of a round without faults: only a very slow start reaches it. */
const JOIN_TIMEOUT_S = 60;

/**
 * Points in a peer's own output where it may be killed: one per phase of the
 * star protocol (docs/protocol.md). The peer logs each message's type as it
 * sends it, so a kill on a line lands just as that message is leaving.
 */
const KILL_POINTS = [
  /^connected to the hospital at /, // connected, INVITE not yet answered
  /^sending join$/, // keys advertised, START not yet confirmed
  /^sending confirm$/, // roster confirmed, no key shares sent
  /^sending sealed$/, // key shares leaving, no masked input
  /^sending input$/, // masked input leaving
  /^sending consistency$/, // set signed, shares not yet revealed
  /^sending reveal$/, // unmasking shares leaving
];

/** Why a threshold round may abort: too few parties remained at some phase. */
const TOO_FEW = new RegExp(
  "round aborted: (" + [
    "Cannot start round: \\d+ participants",
    "Cannot start round: threshold \\d+ (exceeds|is not above half of) \\d+ participants",
    "\\d+ participants confirmed; \\d+ are needed",
    "\\d+ participants shared keys; \\d+ are needed",
    "\\d+ masked inputs arrived; \\d+ are needed",
    "\\d+ survivors signed the set; \\d+ are needed",
    "\\d+ survivors revealed shares; \\d+ are needed",
    "Timed out after \\d+ s waiting for peers to connect \\(\\d+ of \\d+ connected\\)",
  ].join("|") + ")",
);

Deno.test(`threshold rounds with random peers killed at random points (seed ${SEED})`, async () => {
  const random = mulberry32(SEED);
  // Every N, and two of the thresholds it allows (drawn from the seed): all
  // 28 pairs took 45 s of a suite that must stay under 5 minutes, and the
  // seed changes every run, so over runs every pair is drawn.
  const configs: [number, number][] = [];
  for (let n = 3; n <= 10; n++) {
    const allowed = Array.from(
      { length: n - Math.floor(n / 2) },
      (_, i) => Math.floor(n / 2) + 1 + i,
    );
    for (let k = 0; k < 2 && allowed.length > 0; k++) {
      configs.push([n, allowed.splice(Math.floor(random() * allowed.length), 1)[0]!]);
    }
  }
  const dir = await makePki(["hospital", ...demoPeerNames(10)]);
  let completed = 0;
  let aborted = 0;
  /** The kill points some peer's output reached: a point never printed would kill no one. */
  const reached = new Set<RegExp>();
  // Every scenario is drawn first, in order, so the seed replays them whatever order the
  // rounds finish in; then two rounds run at a time (most of a round's time is waiting:
  // a peer killed before it is counted holds the join until its deadline).
  let nextPoint = Math.floor(random() * KILL_POINTS.length);
  const scenarios = configs.map(([n, t]) => {
    const names = demoPeerNames(n);
    const values = new Map(names.map((name) => [name, Math.floor(random() * 1_000_000)]));
    // Kill 0 to n − t + 1 peers (up to one more than the threshold
    // tolerates), at the kill points in turn from a random start: a run then
    // kills at all seven in about 99.9 % of seeds, against 58 % with each
    // point drawn on its own (review 11).
    const victims = new Map<string, RegExp>();
    const killCount = Math.floor(random() * (n - t + 2));
    for (const name of [...names].sort(() => random() - 0.5).slice(0, killCount)) {
      victims.set(name, KILL_POINTS[nextPoint++ % KILL_POINTS.length]!);
    }
    return { n, t, names, values, victims };
  });
  async function runScenario(
    { t, names, values, victims }: (typeof scenarios)[number],
  ): Promise<void> {
    const n = names.length;
    const processes: CliProcess[] = [];
    const what = `N=${n} T=${t} killed ${
      [...victims].map(([v, p]) => `${v}@${p.source}`).join(", ") || "none"
    }`;
    try {
      // A round without faults must complete, so a slow start on a loaded
      // machine must not end it: its join window is wide. (With faults, a
      // peer killed between its handshake and being counted holds the join
      // until its deadline, so that one stays short.)
      const join = victims.size === 0 ? ["--join-timeout", String(JOIN_TIMEOUT_S)] : [];
      const round = await startStar(
        processes,
        dir,
        names.map((name) => [name, [
          "--value",
          String(values.get(name)),
          "--timeout",
          String(TIMEOUT_S * 2),
          ...join,
        ]]),
        { hospitalArgs: ["--threshold", String(t), "--timeout", String(TIMEOUT_S), ...join] },
      );
      const kills: Promise<void>[] = [];
      for (const [name, peer] of round.peers) {
        const point = victims.get(name);
        if (point) {
          kills.push(peer.waitForLine(point, 30_000).then(() => peer.kill("SIGKILL"), () => {}));
        }
      }
      const result = await round.hospital.finish(60_000);
      await Promise.all(kills);
      if (result.code === 0) {
        const report = JSON.parse(result.stdout);
        const contributors: string[] = report.contributors;
        assert.ok(contributors.length >= 2, `${what}: at least 2 contributors`);
        assert.ok(contributors.every((c) => names.includes(c)));
        const expected = contributors.reduce((a, c) => a + values.get(c)!, 0);
        assert.equal(report.sum, expected, `${what}: sum over exactly ${contributors.join(",")}`);
        // Without faults, every peer's input counts.
        if (victims.size === 0) assert.deepEqual(contributors, names, what);
        completed++;
      } else {
        assert.equal(result.code, 1, what);
        assertNoResult(`${what}: the hospital`, result.stdout);
        assert.match(
          result.stderr,
          TOO_FEW,
          `${what}: aborts only because too few remain`,
        );
        assert.ok(victims.size > 0, `${what}: a round without faults must complete`);
        aborted++;
      }
    } catch (error) {
      console.error(`seed ${SEED}, ${what}`);
      dumpLogs(processes);
      throw error;
    } finally {
      await stopAll(processes);
      for (const peer of processes.slice(1)) {
        for (const point of KILL_POINTS) {
          if (peer.stderrLines.some((line) => point.test(line))) reached.add(point);
        }
      }
    }
  }
  try {
    const queue = [...scenarios];
    await Promise.all([0, 1].map(async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await runScenario(next);
    }));
  } finally {
    await removeDir(dir);
  }
  console.log(
    `${configs.length} rounds: ${completed} completed, ${aborted} aborted (too few remained)`,
  );
  assert.equal(completed + aborted, configs.length);
  assert.deepEqual(
    KILL_POINTS.filter((point) => !reached.has(point)).map((point) => point.source),
    [],
    "every kill point is a line peers print",
  );
});
