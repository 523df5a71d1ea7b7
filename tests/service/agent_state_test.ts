/**
 * What a peer agent remembers across restarts (lib/agent/state.ts) and the
 * policy checks that read it (lib/agent/policy.ts): sessions seen, the one
 * contributor set per variable and data version, rounds per day.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAgentConfig } from "../../lib/agent/config.ts";
import {
  checkContributors,
  checkTerms,
  PolicyRefusal,
  recordContributors,
} from "../../lib/agent/policy.ts";
import { AgentState } from "../../lib/agent/state.ts";
import { roundTerms } from "../../lib/runtime/terms.ts";
import { parseQuery } from "../../lib/query.ts";
import { removeDir } from "../helpers.ts";

const CONFIG = `name = "north"
hospital = "127.0.0.1:7000"
hospital_name = "hospital"
certs = "pki"

[data.chol]
file = "north.csv"
column = "cholesterol_mg_dl"
scale = 1
max = 400

[policy]
allow = ["count", "sum", "mean", "variance", "histogram"]
min_contributors = 2
max_histogram_bins = 20
max_rounds_per_day = 2
`;

function terms(query: string, peers: number) {
  return roundTerms({
    query: parseQuery(query, 1),
    scale: 1,
    max: 4000n,
    maxRows: 4096,
    peers,
    minContributors: 2,
    phaseTimeoutMs: 1000,
  });
}

Deno.test("agent state: sessions seen and the answered set survive a restart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "north.state.json");
    const config = parseAgentConfig(CONFIG, join(dir, "north.toml"));
    const variable = config.variables.get("chol")!;
    const first = await AgentState.open(path);
    assert.equal(await first.claimSession("a".repeat(32)), true);
    // A check records nothing; the set is recorded when the data leaves for it.
    checkContributors(variable, "v1", ["bob", "north"], first);
    assert.equal(first.answeredSet("chol", "v1"), undefined);
    await recordContributors(variable, "v1", ["bob", "north", "alice"], first);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    // One process at a time: a second agent of this config is refused while the first runs.
    await assert.rejects(AgentState.open(path), /another agent is running with it/);
    first.close();
    // A new process: the same session is a replay, another set a difference.
    const again = await AgentState.open(path);
    assert.equal(await again.claimSession("a".repeat(32)), false);
    assert.equal(await again.claimSession("b".repeat(32)), true);
    checkContributors(variable, "v1", ["alice", "bob", "north"], again);
    assert.throws(
      () => checkContributors(variable, "v1", ["bob", "north"], again),
      (e) => e instanceof PolicyRefusal && e.message === "refused by policy",
    );
    assert.throws(
      () => checkContributors(variable, "v1", ["alice", "bob", "carol", "north"], again),
      PolicyRefusal,
    );
    await assert.rejects(
      recordContributors(variable, "v1", ["bob", "north"], again),
      PolicyRefusal,
      "recording re-checks",
    );
    assert.deepEqual(again.answeredSet("chol", "v1"), ["alice", "bob", "north"]);
    // A new data version may be answered over any set meeting the floor.
    checkContributors(variable, "v2", ["bob", "north"], again);
    assert.throws(() => checkContributors(variable, "v3", ["north"], again), PolicyRefusal);
    again.close();
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent policy: kinds, bins, the contributor floor and rounds per day are checked at INVITE", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = parseAgentConfig(CONFIG, join(dir, "north.toml"));
    const variable = config.variables.get("chol")!;
    assert.equal(variable.file, join(dir, "north.csv"), "relative to the config file");
    assert.equal(variable.max, 4000n);
    const state = await AgentState.open(join(dir, "s.json"));
    const now = Date.now();
    assert.equal(checkTerms(variable, terms("mean", 3), state, now), "mean");
    assert.throws(() => checkTerms(variable, terms("vector:3", 3), state, now), PolicyRefusal);
    assert.throws(
      () => checkTerms(variable, terms("histogram:0:400:21", 3), state, now),
      PolicyRefusal,
    );
    checkTerms(variable, terms("histogram:0:400:20", 3), state, now);
    await state.recordJoined(now - 1000);
    await state.recordJoined(now - 500);
    assert.throws(() => checkTerms(variable, terms("sum", 3), state, now), PolicyRefusal);
    // A day later the count starts again.
    checkTerms(variable, terms("sum", 3), state, now + 86_400_000);
    state.close();
  } finally {
    await removeDir(dir);
  }
});
