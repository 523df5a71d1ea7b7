/**
 * The heartbeat end to end (review 3, F3; docs/protocol.md §16.2), with
 * real processes over real mutual TLS: a serving hospital whose heartbeat H
 * is made small through the service's option (a child process that starts
 * HospitalService itself; the CLI keeps the 15 s default), `peer --serve`
 * agents from the CLI, and `ask` through the control socket.
 *
 * - A path that goes silent while both ends stay up (a NAT mapping dropped:
 *   the relay keeps both sockets open and forwards nothing) is noticed by
 *   the agent after 3·H, and it reconnects; a round then runs over the new
 *   connection with heartbeats flying between the rounds' messages.
 * - A frozen hospital (SIGSTOP: its sockets stay open and silent) is noticed
 *   by the agent before anything closes, and once the hospital is replaced
 *   the agent is back within the bound.
 * - No heartbeat reaches an invitee inside its part of a round, and it comes
 *   back once that part is over while the round goes on (review 4, R4-1): an
 *   agent that refused at INVITE, agents done and waiting for `released`
 *   while the hospital waits for another's ATTEST, an invitee dropped at the
 *   join deadline. None of them is cut off by its 3·H watchdog.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CliProcess, makePki, ROOT, scenario } from "../helpers.ts";
import { connect } from "../../lib/net/client.ts";
import { decodePayload, isIdle } from "../../lib/wire/messages.ts";
import { TcpProxy } from "../proxy.ts";
import {
  AgentRelay,
  ask,
  freePort,
  resultOf,
  scriptConnect,
  type Site,
  startAgent,
  startAgents,
  startScript,
  startService,
  waitForAudit,
  writeSite,
} from "./helpers.ts";

const NAMES = ["hospital", "north", "south"];
const SITES: Site[] = [
  { name: "north", column: "chol", cells: ["180.5", "220.0"] },
  { name: "south", column: "chol", cells: ["199.9"] },
];
const SUM = 600.4;

/** The hospital as a process, with heartbeat `idleMs`, on `port`, answering asks at `control`. */
async function startHospital(
  processes: CliProcess[],
  dir: string,
  pki: string,
  options: { port: number; control: string; idleMs: number; name: string; phaseMs?: number },
): Promise<CliProcess> {
  const lib = (path: string) => new URL(`../../lib/${path}`, import.meta.url).href;
  const script = join(dir, `${options.name}.ts`);
  await Deno.writeTextFile(
    script,
    `import { HospitalService } from "${lib("service/hospital.ts")}";
import { serveControl } from "${lib("service/control.ts")}";
import { loadIdentity } from "${lib("identity.ts")}";
import { describeError } from "${lib("errors.ts")}";
import { stamped } from "${lib("log.ts")}";
const pki = ${JSON.stringify(pki)};
const log = (line: string) => console.error(stamped(line));
const identity = await loadIdentity("hospital", {
  ca: pki + "/ca.crt", cert: pki + "/hospital.crt", key: pki + "/hospital.key",
}, { use: "hospital" });
const service = await HospitalService.start({
  identity,
  listen: { hostname: "127.0.0.1", port: ${options.port} },
  phaseTimeoutMs: ${options.phaseMs ?? 8_000},
  idleMs: ${options.idleMs},
  log,
});
await serveControl(${JSON.stringify(options.control)}, async (request) => {
  try {
    return { ok: true, report: await service.ask((request as { ask: never }).ask) };
  } catch (error) {
    return { ok: false, error: { kind: "round", message: describeError(error) } };
  }
}, log);
log("listening on 127.0.0.1:" + service.address.port);
log("control socket ready");
`,
  );
  const hospital = new CliProcess(options.name, [], [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--config",
    join(ROOT, "deno.json"),
    "--allow-all",
    fileURLToPath(new URL(`file://${script}`)),
  ]);
  processes.push(hospital);
  await hospital.waitForLine(/control socket ready/, 30_000);
  return hospital;
}

/**
 * Checks the agent gave up after 3·H of silence by its own count, not
 * before, and (the last frame came at most H before the path went quiet)
 * no earlier than 2·H after the test silenced it.
 */
function assertSilence(agent: CliProcess, H: number, sinceQuiet: number): void {
  const line = agent.stderrLines.find((l) => /no word from the hospital in/.test(l))!;
  const [, silent, beat] = /in ([\d.]+) s \(its heartbeat is ([\d.]+) s\)/.exec(line)!;
  assert.equal(Number(beat), H / 1000, line);
  assert.ok(Number(silent) * 1000 >= 3 * H - 50, line);
  assert.ok(sinceQuiet >= 2 * H - 50, `gave up ${sinceQuiet} ms after the path went quiet`);
}

/** Resolves with the time a line matching `pattern` shows up (ms, performance.now()). */
async function lineAt(process: CliProcess, pattern: RegExp, ms: number): Promise<number> {
  await process.waitForLine(pattern, ms);
  return performance.now();
}

Deno.test("liveness: a path gone silent is noticed after 3·H and the agent reconnects; rounds run between heartbeats", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  const proxy = new TcpProxy("pass");
  try {
    await scenario([pki, dir], async (processes) => {
      const H = 200;
      const port = freePort();
      const control = join(dir, "control.sock");
      proxy.setTarget(`127.0.0.1:${port}`);
      const hospital = await startHospital(processes, dir, pki, {
        port,
        control,
        idleMs: H,
        name: "hospital",
      });
      // North reaches the hospital through the relay, south directly.
      const northConfig = await writeSite(dir, pki, SITES[0]!, port);
      const viaProxy = (await Deno.readTextFile(northConfig)).replace(
        `127.0.0.1:${port}`,
        proxy.address,
      );
      await Deno.writeTextFile(northConfig, viaProxy);
      const north = startAgent(processes, "north", northConfig);
      const south = startAgent(processes, "south", await writeSite(dir, pki, SITES[1]!, port));
      await hospital.waitForLines(/^(north|south) connected/, 2, 30_000);
      // A round with heartbeats every 200 ms before and after it.
      assert.equal(resultOf(await ask(processes, control, ["sum", "chol"])).result["sum"], SUM);
      // Long enough for north to see two heartbeats and learn H.
      await new Promise((resolve) => setTimeout(resolve, 5 * H));
      const silentFrom = performance.now();
      assert.equal(proxy.stallAll(), 1);
      const noticed = await lineAt(north, /no word from the hospital in/, 20_000);
      assertSilence(north, H, noticed - silentFrom);
      // The relay passes the agent's close on (a NAT would not; nothing depends on it).
      await hospital.waitForLines(/^north connected/, 2, 20_000);
      const back = performance.now() - silentFrom;
      // 3·H, then one backoff step (at most 250 ms for a first retry), with room for a loaded machine.
      assert.ok(back < 3 * H + 8_000, `back after ${back} ms`);
      // South's direct connection never went quiet: it stayed.
      assert.ok(!south.stderrLines.some((l) => /no word from the hospital/.test(l)));
      const again = resultOf(await ask(processes, control, ["sum", "chol"]));
      assert.equal(again.result["sum"], SUM);
      assert.deepEqual(again.contributors, ["north", "south"]);
      // Nothing of a round ever saw a heartbeat: no agent ignored or refused one.
      for (const agent of [north, south]) {
        assert.ok(!agent.stderrLines.some((l) => /idle|unknown type/.test(l)), agent.log());
      }
    });
  } finally {
    await proxy.close();
  }
});

Deno.test("liveness: a frozen hospital is noticed by the agent, which reaches its replacement", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  await scenario([pki, dir], async (processes) => {
    const H = 300;
    const port = freePort();
    const control = join(dir, "control.sock");
    const first = await startHospital(processes, dir, pki, {
      port,
      control,
      idleMs: H,
      name: "first",
    });
    const north = startAgent(processes, "north", await writeSite(dir, pki, SITES[0]!, port));
    await first.waitForLine(/^north connected/, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 5 * H));
    first.kill("SIGSTOP");
    const frozenAt = performance.now();
    try {
      // Nothing has closed: only the heartbeat's absence can tell.
      await north.waitForLine(/no word from the hospital in/, 20_000);
      assertSilence(north, H, performance.now() - frozenAt);
      await north.waitForLine(/lost the hospital; reconnecting/, 10_000);
    } finally {
      first.kill("SIGKILL");
    }
    await first.finish(10_000);
    const second = await startHospital(processes, dir, pki, {
      port,
      control: join(dir, "control2.sock"),
      idleMs: H,
      name: "second",
    });
    await second.waitForLine(/^north connected/, 20_000);
  });
});

/**
 * Eve answers `describe` as a holder and then never joins: she stays on the
 * round's invitee list until its join deadline. She prints when each `idle`
 * came, counted from the INVITE.
 */
async function startInvitedEve(
  processes: CliProcess[],
  dir: string,
  pki: string,
  port: number,
): Promise<CliProcess> {
  const lib = (path: string) => new URL(`../../lib/${path}`, import.meta.url).href;
  const script = join(dir, "invited_eve.ts");
  await Deno.writeTextFile(
    script,
    `import { decodePayload, encodeMessage, isIdle } from "${lib("wire/messages.ts")}";
${scriptConnect(pki, port, "eve")}
console.error("eve: connected");
let invitedAt: number | undefined;
try {
  for (let first = true; ; first = false) {
    const payload = await conn.readFrame(stop);
    if (first) conn.raiseLimit();
    if (isIdle(payload)) {
      if (invitedAt !== undefined) {
        console.error("eve: idle " + Math.round(performance.now() - invitedAt) + " ms after the invitation");
      }
      continue;
    }
    const decoded = decodePayload(payload);
    if (decoded.kind !== "message") continue;
    const m = decoded.message;
    if (m.type === "describe") {
      await conn.write(encodeMessage({
        type: "description", session: m.session, variable: m.variable, scale: 1, max: 4000n,
        maxRows: 2, dimension: 0,
      }), stop);
    } else if (m.type === "invite") {
      invitedAt = performance.now();
      console.error("eve: invited");
    }
  }
} catch (error) {
  console.error("eve: " + (error as Error).message);
} finally {
  conn.close();
}
`,
  );
  return await startScript(processes, "eve", script, /eve: connected/);
}

Deno.test("liveness: no heartbeat reaches an invitee while its round is in progress", async () => {
  const pki = await makePki([...NAMES, "eve"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  await scenario([pki, dir], async (processes) => {
    const H = 50;
    const phaseMs = 2_000;
    const port = freePort();
    const control = join(dir, "control.sock");
    const hospital = await startHospital(processes, dir, pki, {
      port,
      control,
      idleMs: H,
      name: "hospital",
      phaseMs,
    });
    await startAgents(processes, dir, pki, SITES, port);
    const eve = await startInvitedEve(processes, dir, pki, port);
    await hospital.waitForLines(/^(north|south|eve) connected/, 3, 30_000);
    await ask(processes, control, ["sum", "chol"]);
    await eve.waitForLine(/eve: invited/, 10_000);
    // Once the round is over, the heartbeat comes back: the check below is not vacuous.
    const [first] = await eve.waitForLines(/eve: idle \d+ ms after the invitation/, 1, 10_000);
    const after = Number(/idle (\d+) ms/.exec(first!)![1]);
    // The round held eve until the join deadline at least: no beat inside it.
    assert.ok(after >= phaseMs - 50, `a heartbeat ${after} ms into eve's round\n${hospital.log()}`);
  });
});

Deno.test("liveness: an agent whose part of a round is over hears the heartbeat again while the round goes on", async () => {
  // Review 4, R4-1: north refuses at INVITE (its floor of 9 contributors is above the round's
  // 5); the threshold round goes on without it, held until the join deadline by eve, who never
  // joins. That is far longer than north's 3·H: without a heartbeat north dropped the
  // connection as lost in the middle of the round.
  const pki = await makePki([...NAMES, "east", "west", "eve"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  await scenario([pki, dir], async (processes) => {
    const H = 200;
    const phaseMs = 3_000;
    const port = freePort();
    const control = join(dir, "control.sock");
    const hospital = await startHospital(processes, dir, pki, {
      port,
      control,
      idleMs: H,
      name: "hospital",
      phaseMs,
    });
    const sites: Site[] = [
      { ...SITES[0]!, variable: "min_contributors = 9" },
      SITES[1]!,
      { name: "east", column: "chol", cells: ["150.0"] },
      { name: "west", column: "chol", cells: ["250.0"] },
    ];
    const agents = await startAgents(processes, dir, pki, sites, port);
    await startInvitedEve(processes, dir, pki, port);
    await hospital.waitForLines(/^(north|south|east|west|eve) connected/, 5, 30_000);
    // Long enough for every agent to see two heartbeats and learn H.
    await new Promise((resolve) => setTimeout(resolve, 5 * H));
    const started = performance.now();
    const answer = resultOf(
      await ask(processes, control, ["--peers", "5", "--threshold", "3", "sum", "chol"]),
    );
    const took = performance.now() - started;
    assert.equal(answer.result["sum"], 199.9 + 150 + 250);
    assert.deepEqual(answer.contributors, ["east", "south", "west"]);
    const north = agents.get("north")!;
    await north.waitForLine(/refused by policy|refused: /, 10_000);
    // Not vacuous: the round outlasted north's 3·H by far after north was done with it.
    assert.ok(took >= phaseMs, `the round took ${took} ms`);
    assert.ok(
      hospital.stderrLines.some((l) => /north refused/.test(l)),
      `north did not refuse\n${hospital.log()}`,
    );
    // A little longer, then: north never lost the hospital, and the hospital never lost north.
    await new Promise((resolve) => setTimeout(resolve, 3 * H));
    for (const agent of agents.values()) {
      assert.ok(
        !agent.stderrLines.some((l) => /Connection lost|lost the hospital/.test(l)),
        agent.log(),
      );
    }
    assert.equal(
      hospital.stderrLines.filter((l) => /^north connected/.test(l)).length,
      1,
      hospital.log(),
    );
    assert.ok(!hospital.stderrLines.some((l) => /^north: /.test(l)), hospital.log());
  });
});

Deno.test("liveness: agents done with a round, or dropped from it, hear the heartbeat while the round goes on; the done ones get released", async () => {
  // Review 4, R4-1, the costly case: east's ATTEST never reaches the hospital, which waits for
  // it until the attest deadline; north and south are done, waiting for `released`, far longer
  // than their 3·H. Without a heartbeat they dropped the connection and lost the record. And
  // eve, who never joins, is dropped at the join deadline: her beat resumes then, not at the end.
  const pki = await makePki([...NAMES, "east", "eve"]);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  let middle: AgentRelay | undefined;
  let withheld = 0;
  try {
    await scenario([pki, dir], async (processes) => {
      const H = 200;
      const phaseMs = 3_000;
      const port = freePort();
      const control = join(dir, "control.sock");
      const hospital = await startHospital(processes, dir, pki, {
        port,
        control,
        idleMs: H,
        name: "hospital",
        phaseMs,
      });
      // Every frame but east's ATTEST, on one connection whose hospital side stays open when
      // east's ends, so nothing cuts the hospital's wait for that ATTEST short.
      middle = await AgentRelay.start(pki, "east", port, {
        once: true,
        toHospital: (payload) => {
          const decoded = decodePayload(payload);
          if (decoded.kind === "message" && decoded.message.type === "attest") {
            withheld++;
            return [];
          }
          return [payload];
        },
      });
      const sites: Site[] = [...SITES, { name: "east", column: "chol", cells: ["150.0"] }];
      const agents = new Map<string, CliProcess>();
      for (const site of sites) {
        const to = site.name === "east" ? middle.port : port;
        agents.set(
          site.name,
          startAgent(processes, site.name, await writeSite(dir, pki, site, to)),
        );
      }
      const eve = await startInvitedEve(processes, dir, pki, port);
      await hospital.waitForLines(/^(north|south|east|eve) connected/, 4, 30_000);
      // Long enough for every agent to see two heartbeats and learn H.
      await new Promise((resolve) => setTimeout(resolve, 5 * H));
      const started = performance.now();
      // A threshold round (T = 3 of 4) goes on without eve.
      const answer = resultOf(
        await ask(processes, control, ["--threshold", "3", "sum", "chol"]),
      );
      const took = performance.now() - started;
      assert.equal(answer.result["sum"], SUM + 150);
      assert.deepEqual(answer.contributors, ["east", "north", "south"]);
      // Not vacuous: the hospital waited out the join deadline (eve) and then the attest one.
      assert.equal(withheld, 1);
      assert.ok(took >= 2 * phaseMs, `the round took ${took} ms`);
      // Eve heard nothing inside her part of the round, and the beat once she was dropped.
      const [first] = await eve.waitForLines(/eve: idle \d+ ms after the invitation/, 1, 10_000);
      const after = Number(/idle (\d+) ms/.exec(first!)![1]);
      assert.ok(after >= phaseMs - 50, `a heartbeat ${after} ms into eve's round`);
      assert.ok(
        after < phaseMs + 1_500,
        `eve's first heartbeat came ${after} ms after the invitation`,
      );
      assert.ok(
        hospital.stderrLines.some((l) => /the attest phase's deadline passed/.test(l)),
        hospital.log(),
      );
      for (const name of ["north", "south"]) {
        const [entry] = await waitForAudit(dir, name, "done", 1);
        assert.equal(entry!["session"], answer.session);
        assert.ok(entry!["released"], `${name} kept no released record: ${JSON.stringify(entry)}`);
        const agent = agents.get(name)!;
        assert.ok(
          !agent.stderrLines.some((l) => /Connection lost|lost the hospital/.test(l)),
          agent.log(),
        );
        assert.equal(
          hospital.stderrLines.filter((l) => new RegExp(`^${name} connected`).test(l)).length,
          1,
          hospital.log(),
        );
      }
    });
  } finally {
    middle?.close();
  }
});

Deno.test("liveness: the CLI's serving hospital sends idle at once to an agent it accepts", async () => {
  const pki = await makePki(NAMES);
  const dir = await Deno.makeTempDir({ prefix: "sumshare-liveness-" });
  await scenario([pki, dir], async (processes) => {
    const { port } = await startService(processes, pki, join(dir, "control.sock"));
    const read = (name: string) => Deno.readTextFile(join(pki, name));
    const stop = AbortSignal.timeout(20_000);
    const conn = await connect({
      hostname: "127.0.0.1",
      port,
      ca: await read("ca.crt"),
      cert: await read("north.crt"),
      key: await read("north.key"),
      peer: "the hospital",
    }, stop);
    try {
      // Default H is 15 s; the first beat comes on accepting, so the agent's watchdog arms at once.
      assert.ok(isIdle(await conn.readFrame(AbortSignal.timeout(10_000))));
    } finally {
      conn.close();
    }
  });
});
