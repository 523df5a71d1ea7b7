/**
 * Faults with real processes on the star, from one scenario shape and a
 * table of rows: a round (n-of-n over alice and carol, or threshold 2 of 3
 * over alice, bob and dave) where one party — the last peer or the hospital —
 * is killed (SIGKILL), stopped (SIGSTOP, and for a peer resumed with
 * SIGCONT once the hospital has decided what its silence means: a peer that
 * is slow but alive and answers late), or has its link cut or silently
 * partitioned by the test's TCP proxy (tests/proxy.ts), at a point observed
 * from a process's output: the hospital's "NAME connected (k of n)", a
 * peer's "connected to the hospital", "sending join|confirm|sealed|input|
 * consistency|reveal". Never through a test-only branch in the product.
 *
 * Every row checks the same things: every process that is not the victim
 * (and a resumed slow victim) ends within its timeouts plus a margin, with
 * exit 0 and the result, or exit 1 and a one-line reason (no stack, no raw
 * runtime text); the hospital's result, when there is one, is the sum over
 * exactly the contributors it reports, and those are what the row expects
 * (everyone but the victim, or the victim included once its masked input
 * was complete); a slow peer is dropped at the deadline and its connection
 * closed once the ABORT has left (docs/protocol.md §11.2), and an answer of
 * its that still arrives is ignored and logged, never a protocol error. Two shapes that fit no row (a peer
 * that never connects, no hospital at all) follow the table.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type CliProcess, makePki, scenario, spawnPeer } from "./helpers.ts";
import { TcpProxy } from "./proxy.ts";
import {
  assertCleanAbort,
  ended,
  FAULT_TIMEOUT_S,
  resultOf,
  type StarRound,
  startRound,
} from "./star_helpers.ts";

type Mode = "nofn" | "threshold";
type Fault = "kill" | "stop" | "cut" | "partition";

interface Row {
  mode: Mode;
  /** The last peer of the round (carol, dave) or the hospital. */
  victim: "peer" | "hospital";
  fault: Fault;
  /** When: a line printed by the victim itself, by the hospital, or by alice. */
  at: { by: "victim" | "hospital" | "alice"; line: RegExp; what: string };
  /**
   * What the round must end in: an abort everywhere, a result without the
   * victim, a result with it (its masked input was complete), or either
   * result or an abort (the fault races the last message).
   */
  expect: "abort" | "without" | "with" | "result-or-abort" | "any";
}

/** Small rounds (each row starts its own processes): n-of-n over two peers, threshold 2 of 3. */
const VALUES: Record<Mode, Record<string, number>> = {
  nofn: { alice: 11, carol: 33 },
  threshold: { alice: 11, bob: 22, dave: 44 },
};
const THRESHOLD = "2";

/** Rows that wait for a deadline run with this phase timeout, several at a time. */
const SLOW_TIMEOUT_S = 4;

const victimName = (mode: Mode) => mode === "nofn" ? "carol" : "dave";

const joined = (mode: Mode) => ({
  by: "hospital" as const,
  // Counted by the hospital, so it is invited and then lost (its own
  // "connected" line can come before the hospital counts it).
  line: new RegExp(`^${victimName(mode)} connected \\(\\d of ${mode === "nofn" ? 2 : 3}\\)$`),
  what: "before its JOIN",
});
const says = (by: "victim" | "alice", type: string, what: string) => ({
  by,
  line: new RegExp(`^sending ${type}$`),
  what,
});
const connected = (by: "victim" | "alice") => ({
  by,
  line: /^connected to the hospital at /,
  what: "connected, before JOIN",
});

const ROWS: Row[] = [
  // n-of-n: a peer dies at each of its steps; every invited peer's input counts.
  { mode: "nofn", victim: "peer", fault: "kill", at: joined("nofn"), expect: "abort" },
  {
    mode: "nofn",
    victim: "peer",
    fault: "kill",
    at: says("victim", "join", "after its keys"),
    expect: "abort",
  },
  {
    mode: "nofn",
    victim: "peer",
    fault: "kill",
    at: says("victim", "input", "during its masked input"),
    // Its whole masked input may have arrived before the kill: then it counts.
    expect: "result-or-abort",
  },
  {
    mode: "nofn",
    victim: "peer",
    fault: "stop",
    at: says("victim", "join", "after its keys"),
    expect: "abort",
  },
  {
    mode: "nofn",
    victim: "peer",
    fault: "cut",
    at: says("victim", "confirm", "after START"),
    expect: "abort",
  },
  // n-of-n: the hospital dies at each phase.
  { mode: "nofn", victim: "hospital", fault: "kill", at: connected("alice"), expect: "abort" },
  {
    mode: "nofn",
    victim: "hospital",
    fault: "kill",
    at: says("alice", "confirm", "collecting confirmations"),
    expect: "abort",
  },
  {
    mode: "nofn",
    victim: "hospital",
    fault: "kill",
    at: says("alice", "input", "collecting masked inputs"),
    expect: "any",
  },
  {
    mode: "nofn",
    victim: "hospital",
    fault: "stop",
    at: says("alice", "confirm", "collecting confirmations"),
    expect: "abort",
  },
  // Threshold 2 of 3: dave dies at each of his steps; the others finish without him
  // unless his masked input was complete.
  { mode: "threshold", victim: "peer", fault: "kill", at: joined("threshold"), expect: "without" },
  {
    mode: "threshold",
    victim: "peer",
    fault: "kill",
    at: says("victim", "join", "after his keys"),
    expect: "without",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "kill",
    at: says("victim", "sealed", "after sharing keys"),
    expect: "without",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "kill",
    at: says("victim", "input", "during his masked input"),
    expect: "any",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "kill",
    at: says("victim", "consistency", "after his masked input"),
    expect: "with",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "kill",
    at: says("victim", "reveal", "during unmasking"),
    expect: "with",
  },
  // Threshold: dave slow but alive, answering after the hospital moved on.
  {
    mode: "threshold",
    victim: "peer",
    fault: "stop",
    at: says("victim", "confirm", "after START"),
    expect: "without",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "stop",
    at: says("victim", "input", "as he sends his masked input"),
    expect: "any",
  },
  // Threshold: dave's link cut, or silently partitioned.
  {
    mode: "threshold",
    victim: "peer",
    fault: "cut",
    at: says("victim", "sealed", "after sharing keys"),
    expect: "without",
  },
  {
    mode: "threshold",
    victim: "peer",
    fault: "partition",
    at: says("victim", "confirm", "after START"),
    expect: "without",
  },
  // Threshold: the hospital dies at each phase.
  {
    mode: "threshold",
    victim: "hospital",
    fault: "kill",
    at: says("alice", "sealed", "collecting key shares"),
    expect: "abort",
  },
  {
    mode: "threshold",
    victim: "hospital",
    fault: "kill",
    at: says("alice", "consistency", "collecting consistency signatures"),
    expect: "abort",
  },
  {
    mode: "threshold",
    victim: "hospital",
    fault: "kill",
    at: says("alice", "reveal", "unmasking"),
    expect: "any",
  },
];

/** Rows that can only end at a deadline. */
const slow = (row: Row) => row.fault === "stop" || row.fault === "partition";

function label(row: Row): string {
  const mode = row.mode === "nofn" ? "n-of-n" : `threshold ${THRESHOLD} of 3`;
  const who = row.victim === "hospital" ? "the hospital" : victimName(row.mode);
  const fault = {
    kill: "killed",
    stop: row.victim === "peer" ? "stopped, then resumed late" : "stopped",
    cut: "has its link cut",
    partition: "has its link silently partitioned",
  }[row.fault];
  return `${mode}: ${who} ${fault} ${row.at.what} (${row.at.line.source}) → ${row.expect}`;
}

/**
 * Rows run a few at a time, but start one at a time: starting processes is
 * what loads the machine, and a deadline must not pass because another row
 * was starting. The lock is held until every peer of the row is connected
 * (or its fault point, if that comes first).
 */
let startup: Promise<void> = Promise.resolve();
function startupTurn(): Promise<() => void> {
  let release!: () => void;
  const mine = new Promise<void>((resolve) => release = resolve);
  const turn = startup.then(() => release);
  startup = startup.then(() => mine);
  return turn;
}

/** Whether a resumed slow peer was really late: the hospital passed a deadline without it. */
let lateAnswersSeen = 0;
/**
 * Resumed slow peers the hospital dropped after a deadline. (Their late answers
 * seldom reach it: it closes a dropped peer's connection once its ABORT has
 * left, §11.2. Those that do are logged as ignored, which checkLateAnswers
 * checks.)
 */
let droppedLate = 0;

/** Runs one row; see the module documentation for what every row checks. */
async function runRow(row: Row, serialStart: boolean): Promise<void> {
  const values = VALUES[row.mode];
  const names = Object.keys(values);
  const victim = victimName(row.mode);
  const timeoutS = slow(row) ? SLOW_TIMEOUT_S : FAULT_TIMEOUT_S;
  // Join, then at most every phase's deadline and a peer's grace, plus room for a loaded machine.
  const endMs = (3 * timeoutS + 15) * 1000;
  const dir = await makePki(["hospital", ...names]);
  const proxy = row.fault === "cut" || row.fault === "partition" ? new TcpProxy("pass") : undefined;
  const release = serialStart ? await startupTurn() : () => {};
  try {
    await scenario([dir], async (processes: CliProcess[]) => {
      const round = await startRound(processes, dir, values, {
        timeoutS,
        // No row leaves a peer unconnected, so the hospital starts as soon as
        // every peer is in; a join deadline as short as the phases' failed
        // rows on a heavily loaded machine, where starting a process took
        // longer (the hospital started without the victim).
        joinTimeoutS: 60,
        hospitalArgs: row.mode === "threshold" ? ["--threshold", THRESHOLD] : [],
        ...(proxy ? { hospitalAddress: { [victim]: proxy.address } } : {}),
      });
      proxy?.setTarget(round.address);
      // Starting is over once every peer is connected (the join deadline is safe).
      const everyone = new RegExp(`^\\S+ connected \\(${names.length} of ${names.length}\\)$`);
      round.hospital.waitForLine(everyone, endMs).then(release, release);
      const target = row.victim === "hospital" ? round.hospital : round.peers.get(victim)!;
      const watched = row.at.by === "hospital"
        ? round.hospital
        : row.at.by === "alice"
        ? round.peers.get("alice")!
        : target;
      await watched.waitForLine(row.at.line, endMs);
      const resumed = await inject(row, round, target, proxy, endMs);
      release();

      const judged = row.expect === "abort" || row.expect === "without";
      if (judged && row.victim === "peer" && (row.fault === "kill" || row.fault === "cut")) {
        await target.finish(endMs).catch(() => {});
        if (wentPast(target, row)) throw new LateFault(label(row));
      }
      const survivors = [...round.peers].filter(([name]) =>
        row.victim === "hospital" || name !== victim || resumed
      );
      const hospital = row.victim === "hospital" ? undefined : await ended(round.hospital, endMs);
      const peerEnds = new Map<string, Awaited<ReturnType<typeof ended>>>();
      for (const [name, peer] of survivors) peerEnds.set(name, await ended(peer, endMs));
      checkOutcome(row, values, hospital, peerEnds, round);
      if (resumed && row.expect !== "abort") checkLateAnswers(round, victim);
    });
  } finally {
    release();
    await proxy?.close();
  }
}

/**
 * The fault landed later than the row means: a victim killed or cut right
 * after a line it printed can still send its next message before the signal
 * or the cut arrives (the test reads the line through a pipe, then acts), and
 * a fast round leaves that window wider. Such a run tests another row, so it
 * is run again rather than judged.
 */
class LateFault extends Error {
  override name = "LateFault";
}

/** Whether the victim sent a message after the one the fault was meant to follow. */
function wentPast(victim: CliProcess, row: Row): boolean {
  const lines = victim.stderrLines;
  const sent = lines.filter((l) => /^sending \w+$/.test(l));
  // Meant to land before its JOIN: a JOIN that got out first changes nothing (an n-of-n round
  // still aborts, a threshold one still goes on without it), a later message does.
  if (row.at.by === "hospital") return sent.some((l) => l !== "sending join");
  const at = sent.findIndex((l) => row.at.line.test(l));
  return at !== -1 && at < sent.length - 1;
}

/** Applies the row's fault; returns whether the victim is a peer that was resumed. */
async function inject(
  row: Row,
  round: StarRound,
  target: CliProcess,
  proxy: TcpProxy | undefined,
  endMs: number,
): Promise<boolean> {
  switch (row.fault) {
    case "kill":
      target.kill("SIGKILL");
      return false;
    case "cut":
      assert.ok(proxy!.cutAll() >= 2, "the proxy had the link open");
      return false;
    case "partition":
      assert.ok(proxy!.stallAll() >= 1, "the proxy had the link open");
      return false;
    case "stop":
      target.kill("SIGSTOP");
      if (row.victim === "hospital") return false; // it stays stopped; the scenario kills it
      // Resumed once the hospital has decided about its silence: a phase
      // deadline passed (or it finished: the stop landed after the answer).
      await Promise.race([
        round.hospital.waitForLine(/^the \w+ phase's deadline passed$/, endMs).then(
          () => lateAnswersSeen++,
          () => {},
        ),
        round.hospital.child.status,
      ]);
      target.kill("SIGCONT");
      return true;
  }
}

type End = Awaited<ReturnType<typeof ended>>;

function checkOutcome(
  row: Row,
  values: Record<string, number>,
  hospital: End | undefined,
  peers: Map<string, End>,
  round: StarRound,
): void {
  const victim = victimName(row.mode);
  let result: { sum: number; contributors: string[] } | undefined;
  if (hospital) {
    if (hospital.code === 0) {
      result = resultOf(hospital);
      // The sum over exactly the reported contributors, never anything else.
      const expected = result.contributors.reduce((sum, name) => sum + values[name]!, 0);
      assert.equal(result.sum, expected, "the sum over exactly the reported contributors");
      assert.ok(result.contributors.length >= 2);
    } else {
      assertCleanAbort("hospital", hospital, /round aborted: /);
    }
  }
  const everyone = Object.keys(values);
  switch (row.expect) {
    case "abort":
      if (hospital) assert.equal(result, undefined, "the round must abort");
      break;
    case "without":
      assert.deepEqual(result?.contributors, everyone.filter((n) => n !== victim));
      break;
    case "with":
      assert.deepEqual(result?.contributors, everyone);
      break;
    case "result-or-abort":
      if (result) assert.deepEqual(result.contributors, everyone);
      break;
    case "any":
      break;
  }
  for (const [name, end] of peers) {
    if (end.code === 0) {
      // A peer reports success only for a round the hospital finished.
      assert.ok(hospital === undefined || result !== undefined, `${name} done in an aborted round`);
      assert.match(end.stderr, /session done over \d+ participants/, name);
      assert.doesNotMatch(end.stderr, /^\s+at |Uncaught|a bug|panicked/m, name);
    } else {
      assertCleanAbort(
        name,
        end,
        row.victim === "hospital"
          ? /^sumshare peer: (round aborted: .*(hospital|timed out in phase)|Cannot connect to the hospital)/m
          : /round aborted: |^sumshare peer: /m,
      );
      if (result && name !== victim && result.contributors.includes(name)) {
        // A contributor may miss DONE only if the hospital was gone; here it was not.
        assert.fail(
          `${name} contributed to a finished round but aborted:\n${round.hospital.log()}`,
        );
      }
    }
  }
}

/** What the hospital said about the resumed victim after it fell behind: only "ignored". */
function checkLateAnswers(round: StarRound, victim: string): void {
  const lines = round.hospital.stderrLines;
  const decided = lines.findIndex((l) => /^the \w+ phase's deadline passed$/.test(l));
  const after = lines.slice(decided + 1).filter((l) => l.includes(victim));
  if (after.length > 0) {
    console.log(`  the hospital after ${victim} fell behind: ${after.join(" | ")}`);
  }
  if (after.some((l) => l.startsWith(`dropped ${victim}: `))) droppedLate++;
  for (const line of after) {
    assert.match(
      line,
      new RegExp(
        `^(ignored (late )?\\w+ from ${victim}|dropped ${victim}: (it did not|no )|${victim}: )`,
      ),
      "a late answer is ignored and logged, never a protocol error",
    );
    assert.doesNotMatch(line, /unexpected|violation|round aborted/);
  }
  assert.ok(!lines.some((l) => /^round aborted: /.test(l)), "the late peer aborted nothing");
}

/** Runs `rows`, `width` at a time; fails with every failing row's label and error. */
async function runRows(rows: Row[], width: number, serialStart: boolean): Promise<void> {
  const failures: string[] = [];
  const queue = [...rows];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let row = queue.shift(); row; row = queue.shift()) {
      const started = performance.now();
      for (let attempt = 1;; attempt++) {
        try {
          await runRow(row, serialStart);
          console.log(`ok ${label(row)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
        } catch (error) {
          if (error instanceof LateFault && attempt < 3) {
            console.log(`again ${label(row)}: the fault landed after the victim's next message`);
            continue;
          }
          failures.push(`${label(row)}: ${(error as Error).stack ?? error}`);
        }
        break;
      }
    }
  }));
  assert.deepEqual(failures, [], failures.join("\n\n"));
}

Deno.test(`faults that end at once (kills, cuts): ${ROWS.filter((r) => !slow(r)).length} rows`, () =>
  // Nothing here waits for a deadline but the join: three at a time.
  runRows(ROWS.filter((r) => !slow(r)), 3, false));

Deno.test(
  `faults that end at a deadline (stopped parties, a partition): ${ROWS.filter(slow).length} rows`,
  async () => {
    // Each row mostly waits for a deadline, so all run together; they
    // start one at a time so that no deadline passes for the load of starting.
    await runRows(ROWS.filter(slow), ROWS.filter(slow).length, true);
    // At least one resumed peer really answered after the hospital had moved on.
    assert.ok(lateAnswersSeen >= 1, "no slow peer was late: the stops landed after the answers");
    assert.ok(droppedLate >= 1, "no slow peer was dropped after a deadline");
  },
);

Deno.test("n-of-n: a peer that never connects: the hospital aborts at the join deadline, and tells the others", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "carol"]);
  await scenario([dir], async (processes: CliProcess[]) => {
    // The join window must outlast two peer processes starting on a loaded
    // 2-core machine (3 s did not, once, under heavy load); the test
    // waits for it in full, so it is no longer than that needs.
    const timeoutS = 8;
    const round = await startRound(processes, dir, { alice: 11, bob: 22 }, {
      peers: 3,
      timeoutS,
    });
    const endMs = (3 * timeoutS + 15) * 1000;
    const hospital = await ended(round.hospital, endMs);
    assertCleanAbort("hospital", hospital, /round aborted: .*\(2 of 3 connected\)/);
    for (const [name, peer] of round.peers) {
      assertCleanAbort(name, await ended(peer, endMs), /round aborted: /);
    }
  });
});

Deno.test("a peer with no hospital to reach ends at once with a reason", async () => {
  const dir = await makePki(["hospital", "alice"]);
  await scenario([dir], async (processes: CliProcess[]) => {
    // A port that was free a moment ago: nothing listens there.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const peer = spawnPeer(dir, "alice", "1", `127.0.0.1:${port}`, "--timeout", "30");
    processes.push(peer);
    const end = await ended(peer, 20_000);
    assertCleanAbort("alice", end, /^sumshare peer: .*127\.0\.0\.1:\d+: connection refused/m);
    assert.ok(end.ms < 15_000, "well before its 30 s timeout");
  });
});
