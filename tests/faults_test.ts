/**
 * Faults with real processes, in both modes: a peer never joins, dies at
 * several points, stalls, the hospital dies, a link between two peers drops.
 * Faults are injected from the test at points observed in the processes'
 * output (kill, SIGSTOP, or a TCP proxy in front of a peer), never through
 * test-only branches in the product.
 *
 * Additive mode needs every peer, so each fault aborts the round at every
 * survivor. Threshold mode (here T = 3 of 4) completes with the sum over
 * exactly the contributors it reports.
 */
import assert from "node:assert/strict";
import { CliProcess, dumpLogs, makePki, removeDir, stopAll } from "./helpers.ts";
import { TcpProxy } from "./proxy.ts";

const TIMEOUT_S = 6;
/** How long after a fault every survivor must have ended. */
const MARGIN_MS = TIMEOUT_S * 1000 + 4000;
const VALUES: Record<string, number> = { alice: 1000, bob: 200, charlie: 30, dave: 4 };
const NAMES = Object.keys(VALUES);

type Mode = "additive" | "threshold";

/** A round under test: the hospital and the peers as processes. */
class Harness {
  readonly processes: CliProcess[] = [];
  readonly proxies: TcpProxy[] = [];
  readonly peers = new Map<string, CliProcess>();
  hospital!: CliProcess;
  address = "";

  constructor(readonly dir: string, readonly mode: Mode) {}

  async startHospital(): Promise<void> {
    this.hospital = new CliProcess("hospital", [
      "hospital",
      "--listen",
      "127.0.0.1:0",
      "--peers",
      "4",
      "--certs",
      this.dir,
      "--json",
      "--timeout",
      String(TIMEOUT_S),
      ...(this.mode === "threshold" ? ["--threshold", "3"] : []),
    ]);
    this.processes.push(this.hospital);
    this.address = await this.hospital.address();
  }

  /** Starts a peer; with a proxy, other peers reach it only through the proxy. */
  startPeer(name: string, proxy?: TcpProxy): CliProcess {
    const peer = new CliProcess(name, [
      "peer",
      "--name",
      name,
      "--value",
      String(VALUES[name]),
      "--hospital",
      this.address,
      "--certs",
      this.dir,
      "--timeout",
      String(TIMEOUT_S),
      ...(proxy ? ["--advertise", proxy.address] : []),
    ]);
    if (proxy) {
      this.proxies.push(proxy);
      peer.address().then((a) => proxy.setTarget(a), () => {});
    }
    this.processes.push(peer);
    this.peers.set(name, peer);
    return peer;
  }

  /** Waits for the hospital and the named survivors. */
  async finish(survivors: string[]) {
    const hospital = await this.hospital.finish(MARGIN_MS * 2);
    const peers = new Map<string, Awaited<ReturnType<CliProcess["finish"]>>>();
    for (const name of survivors) {
      peers.set(name, await this.peers.get(name)!.finish(MARGIN_MS * 2));
    }
    return { hospital, peers };
  }

  async close(): Promise<void> {
    await stopAll(this.processes);
    for (const proxy of this.proxies) await proxy.close();
  }
}

/** Runs a scenario in one mode and checks the outcome the mode promises. */
async function scenario(
  mode: Mode,
  survivors: string[],
  inject: (h: Harness) => Promise<void>,
  expectThreshold: (contributors: string[]) => void,
  reason: RegExp,
): Promise<void> {
  const dir = await makePki(["hospital", ...NAMES]);
  const h = new Harness(dir, mode);
  try {
    await h.startHospital();
    await inject(h);
    const faultAt = performance.now();
    const { hospital, peers } = await h.finish(survivors);
    assert.ok(
      performance.now() - faultAt < MARGIN_MS,
      "every survivor ends within its timeout and a margin",
    );
    if (mode === "additive") {
      assert.equal(hospital.code, 1, "the hospital fails");
      assert.equal(hospital.stdout, "", "no sum printed");
      assert.match(hospital.stderr, reason);
      for (const [name, r] of peers) {
        assert.equal(r.code, 1, `${name} fails`);
        assert.match(r.stderr, /round aborted: \S/, `${name} gives a reason`);
      }
    } else {
      assert.equal(hospital.code, 0, "the round completes");
      const result = JSON.parse(hospital.stdout);
      const contributors: string[] = result.contributors;
      assert.equal(
        result.sum,
        contributors.reduce((a, n) => a + VALUES[n]!, 0),
        "sum over exactly the contributors",
      );
      expectThreshold(contributors);
      for (const [name, r] of peers) assert.equal(r.code, 0, `${name} completes`);
    }
  } catch (error) {
    dumpLogs(h.processes);
    throw error;
  } finally {
    await h.close();
    await removeDir(dir);
  }
}

for (const mode of ["additive", "threshold"] as const) {
  Deno.test(`${mode}: a peer never joins`, async () => {
    await scenario(
      mode,
      ["alice", "bob", "charlie"],
      async (h) => {
        for (const name of ["alice", "bob", "charlie"]) h.startPeer(name);
        await h.hospital.waitForLine(/\(3\/4\)$/);
      },
      (c) => assert.deepEqual(c, ["alice", "bob", "charlie"]),
      /Timed out after 6 s waiting for peers to join \(3 of 4/,
    );
  });

  Deno.test(`${mode}: a peer dies after joining, before sharing`, async () => {
    await scenario(
      mode,
      ["alice", "bob", "charlie"],
      async (h) => {
        // dave joins first and is frozen, so it never acts on START.
        const dave = h.startPeer("dave");
        await h.hospital.waitForLine(/^dave joined/);
        dave.kill("SIGSTOP");
        for (const name of ["alice", "bob", "charlie"]) h.startPeer(name);
        await h.hospital.waitForLine(/^starting session/);
        dave.kill("SIGKILL");
      },
      (c) => assert.deepEqual(c, ["alice", "bob", "charlie"]),
      /round aborted: .*dave/,
    );
  });

  Deno.test(`${mode}: a peer dies after sending some of its shares`, async () => {
    await scenario(
      mode,
      ["bob", "charlie", "dave"],
      async (h) => {
        // alice (first by name) sends to everyone in both modes. charlie is
        // reachable only through a proxy that holds connections, so alice's
        // share to charlie cannot have arrived when alice is killed.
        const proxy = new TcpProxy("stall");
        h.startPeer("charlie", proxy);
        for (const name of ["bob", "dave"]) h.startPeer(name);
        const alice = h.startPeer("alice");
        await alice.waitForLine(/^sent share to (bob|dave)$/);
        alice.kill("SIGKILL");
        proxy.release();
      },
      (c) => assert.deepEqual(c, ["bob", "charlie", "dave"]),
      /round aborted: .*alice/,
    );
  });

  Deno.test(`${mode}: a peer dies after sharing, before its partial sum`, async () => {
    await scenario(
      mode,
      ["alice", "charlie", "dave"],
      async (h) => {
        // Shares to bob are held up, so bob has sent all of its shares (to
        // charlie and dave in additive mode, where seeds go to higher names;
        // to everyone in threshold mode) but cannot have sent a partial sum.
        const proxy = new TcpProxy("stall");
        const bob = h.startPeer("bob", proxy);
        for (const name of ["alice", "charlie", "dave"]) h.startPeer(name);
        await bob.waitForLines(/^sent share to /, mode === "additive" ? 2 : 3);
        bob.kill("SIGKILL");
        proxy.release();
      },
      (c) => assert.deepEqual(c, NAMES, "bob shared with everyone, so its input counts"),
      /round aborted: .*bob/,
    );
  });

  Deno.test(`${mode}: the hospital dies`, async () => {
    const dir = await makePki(["hospital", ...NAMES]);
    const h = new Harness(dir, mode);
    try {
      await h.startHospital();
      // Shares to charlie are held up, so the round cannot finish before the kill.
      const proxy = new TcpProxy("stall");
      h.startPeer("charlie", proxy);
      for (const name of ["alice", "bob", "dave"]) h.startPeer(name);
      await h.peers.get("alice")!.waitForLine(/^round [0-9a-f]{8} started/);
      h.hospital.kill("SIGKILL");
      const faultAt = performance.now();
      proxy.release();
      // A peer may hear of the loss second-hand first: a survivor that already
      // quit refuses its share. Either reason is a clean abort, and whoever
      // quit first can only have heard it from the hospital itself.
      const reasons: string[] = [];
      for (const [name, peer] of h.peers) {
        const r = await peer.finish(MARGIN_MS * 2);
        assert.equal(r.code, 1, name);
        const reason = r.stderr.match(
          /round aborted: (lost the connection to hospital|Cannot send share to [a-z]+)/,
        );
        assert.ok(reason, `${name} gave no abort reason`);
        reasons.push(reason[1]!);
      }
      assert.ok(reasons.includes("lost the connection to hospital"));
      assert.ok(performance.now() - faultAt < MARGIN_MS);
    } catch (error) {
      dumpLogs(h.processes);
      throw error;
    } finally {
      await h.close();
      await removeDir(dir);
    }
  });

  Deno.test(`${mode}: a peer stalls without closing`, async () => {
    await scenario(
      mode,
      ["alice", "bob", "charlie"],
      async (h) => {
        const dave = h.startPeer("dave");
        await h.hospital.waitForLine(/^dave joined/);
        dave.kill("SIGSTOP");
        for (const name of ["alice", "bob", "charlie"]) h.startPeer(name);
        await h.hospital.waitForLine(/^starting session/);
      },
      (c) => assert.deepEqual(c, ["alice", "bob", "charlie"]),
      /round aborted: .*(Timed out|dave)/,
    );
  });

  Deno.test(`${mode}: the link between two peers drops`, async () => {
    let proxy: TcpProxy | undefined;
    await scenario(mode, NAMES, async (h) => {
      // The first connection into charlie is cut: one sender's share to
      // charlie never arrives.
      proxy = new TcpProxy("cut-first");
      h.startPeer("charlie", proxy);
      for (const name of ["alice", "bob", "dave"]) h.startPeer(name);
      await h.hospital.waitForLine(/^starting session/);
    }, (c) => {
      assert.equal(proxy!.cut, 1);
      assert.equal(c.length, 3, "the sender whose share was cut is left out");
      assert.ok(c.includes("charlie"));
    }, /round aborted: .*(Cannot send share to charlie|charlie)/);
  });
}
