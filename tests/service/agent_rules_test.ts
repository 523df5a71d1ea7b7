/**
 * The agent's data-independent rules, at the unit level (review 3, F1/F2):
 * the data version depends on the data alone (not the round's scale, not the
 * row order unless the variable is a vector); the data is checked against
 * the variable's declaration, never the round's terms; the round's terms are
 * refused before any data is read when they do not cover the declaration;
 * a format-1 state file is upgraded without forgetting what it answered.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAgentConfig } from "../../lib/agent/config.ts";
import { atScale, legacyVersions, readVariable } from "../../lib/agent/data.ts";
import { checkContributors, checkTerms, PolicyRefusal } from "../../lib/agent/policy.ts";
import { AgentState } from "../../lib/agent/state.ts";
import { toHex } from "../../lib/encoding.ts";
import { parseQuery } from "../../lib/query.ts";
import { roundTerms } from "../../lib/runtime/terms.ts";
import { removeDir } from "../helpers.ts";

function config(dir: string, extra = "") {
  return parseAgentConfig(
    `name = "north"
hospital = "127.0.0.1:7000"
certs = "pki"

[data.chol]
file = "north.csv"
column = "chol"
scale = 1
max = 400
max_rows = 10

[data.v]
file = "v.json"
max = 100
dimension = 3

[policy]
allow = ["count", "sum", "mean", "variance", "histogram", "vector"]
min_contributors = 2
${extra}
`,
    join(dir, "north.toml"),
  );
}

function terms(
  query: string,
  options: { scale?: number; max?: bigint; maxRows?: number; peers?: number } = {},
) {
  const scale = options.scale ?? 1;
  return roundTerms({
    query: parseQuery(query, scale),
    scale,
    max: options.max ?? 4000n * 10n ** BigInt(scale - 1),
    maxRows: options.maxRows ?? 10,
    peers: options.peers ?? 3,
    minContributors: 2,
    phaseTimeoutMs: 1000,
  });
}

async function csv(dir: string, cells: string[]) {
  await Deno.writeTextFile(
    join(dir, "north.csv"),
    `id,chol\n${cells.map((c, i) => `${i + 1},${c}`).join("\n")}\n`,
  );
}

/** The format-1 data version, written out independently: SHA-256(u32 scale, u32 n, f64 values in row order). */
async function formatOneVersion(values: number[], scale: number): Promise<string> {
  const bytes = new Uint8Array(8 + values.length * 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, scale, true);
  view.setUint32(4, values.length, true);
  values.forEach((v, i) => view.setFloat64(8 + 8 * i, v, true));
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

Deno.test("agent data: the version is the data's alone: row order does not change it (but does for a vector), the values do", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const variables = config(dir).variables;
    const chol = variables.get("chol")!;
    await csv(dir, ["182.0", "240", "199.5"]);
    const first = await readVariable(chol);
    assert.deepEqual(Array.from(first.values), [1820, 2400, 1995], "at the declared scale");
    await csv(dir, ["240.0", "199.5", "182"]);
    const resorted = await readVariable(chol);
    assert.equal(resorted.version, first.version, "the same multiset: the same version");
    await csv(dir, ["240.0", "199.5", "182.1"]);
    assert.notEqual((await readVariable(chol)).version, first.version, "other data");

    const v = variables.get("v")!;
    await Deno.writeTextFile(join(dir, "v.json"), "[1, 2, 3]");
    const ordered = await readVariable(v);
    await Deno.writeTextFile(join(dir, "v.json"), "[3, 2, 1]");
    assert.notEqual((await readVariable(v)).version, ordered.version, "a vector's order is data");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent data: a value outside the declared range, or too many rows, is refused naming where, never what", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const chol = config(dir).variables.get("chol")!;
    await csv(dir, ["182.0", "400.1", "199.5"]);
    const error = await readVariable(chol).then(() => undefined, (e: Error) => e);
    assert.ok(error, "400.1 is above the declared max 400");
    assert.match(error.message, /north\.csv line 3, column "chol": outside chol's declared range/);
    assert.doesNotMatch(error.message, /400\.1|4001/, "never the value");
    await csv(dir, ["-0.1"]);
    await assert.rejects(readVariable(chol), /line 2, column "chol": outside/);
    await csv(dir, Array.from({ length: 11 }, () => "1"));
    await assert.rejects(readVariable(chol), /11 rows, more than chol's declared max_rows = 10/);
    await csv(dir, ["400", "0"]);
    await readVariable(chol);
    const v = config(dir).variables.get("v")!;
    await Deno.writeTextFile(join(dir, "v.json"), "[1, 2]");
    await assert.rejects(readVariable(v), /2 numbers, but v declares dimension = 3/);
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent policy: a round that does not cover the declared range is refused before the data is read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const variables = config(dir).variables;
    const chol = variables.get("chol")!;
    const state = await AgentState.open(join(dir, "s.json"));
    const now = Date.now();
    const refuses = (t: ReturnType<typeof terms>, rule: RegExp) =>
      assert.throws(
        () => checkTerms(chol, t, state, now),
        (e) => e instanceof PolicyRefusal && e.message === "refused by policy" && rule.test(e.rule),
      );
    // Bisection by histogram range (review 3, F2): no range short of the declared one joins.
    for (const range of ["0:200", "0:399.9", "0.1:400", "100:300"]) {
      refuses(terms(`histogram:${range}:1`), /histogram's range does not cover/);
    }
    for (const range of ["0:400", "-10:500", "0:1000"]) {
      assert.equal(checkTerms(chol, terms(`histogram:${range}:2`), state, now), "histogram");
    }
    // Scale 2: the declared max is 40000 there.
    assert.equal(
      checkTerms(chol, terms("histogram:0:400:2", { scale: 2 }), state, now),
      "histogram",
    );
    refuses(terms("histogram:0:399.99:2", { scale: 2 }), /does not cover/);
    // Review 15, F4: bins are not bounded by R, so the declared max at the
    // round's scale must stay below 2^53 for every value to be exact there:
    // 400.0 at scale 14 is 4·10^16, above; at scale 13, 4·10^15, below.
    refuses(
      terms("histogram:0:400:3", { scale: 14, max: 1n }),
      /above 2\^53 − 1, so its values could not be binned/,
    );
    assert.equal(
      checkTerms(chol, terms("histogram:0:400:3", { scale: 13, max: 1n }), state, now),
      "histogram",
    );
    // R and the row limit.
    refuses(terms("sum", { max: 3999n }), /R is below chol's declared max/);
    refuses(terms("count", { max: 10n }), /R is below/);
    refuses(terms("sum", { scale: 2, max: 39_999n }), /R is below/);
    assert.equal(checkTerms(chol, terms("sum", { scale: 2, max: 40_000n }), state, now), "sum");
    refuses(terms("mean", { maxRows: 9 }), /row limit 9 is below chol's declared max_rows 10/);
    assert.equal(checkTerms(chol, terms("mean", { maxRows: 11 }), state, now), "mean");
    refuses(terms("sum", { scale: 0, max: 400n }), /scale 0 is below chol's declared scale 1/);
    // A vector's length is the declared dimension.
    const v = variables.get("v")!;
    const vector = (d: number) => terms(`vector:${d}`, { scale: 0, max: 100n });
    assert.equal(checkTerms(v, vector(3), state, now), "vector");
    assert.throws(() => checkTerms(v, vector(2), state, now), PolicyRefusal);
    state.close();
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent state: a format-1 file is upgraded; its answered set still holds for the same data at any round scale", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const chol = config(dir).variables.get("chol")!;
    await csv(dir, ["182.0", "240", "199.5"]);
    // What an older agent recorded after a round at scale 2, rows in file order.
    const old = await formatOneVersion([18200, 24000, 19950], 2);
    const path = join(dir, "north.state.json");
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        format: "sumshare-agent-state/1",
        sessions: ["a".repeat(32)],
        joined: [],
        answered: { chol: { [old]: ["alice", "bob", "north"] }, other: { x: ["a", "b"] } },
      }),
      { mode: 0o600 },
    );
    const state = await AgentState.open(path);
    assert.equal(await state.claimSession("a".repeat(32)), false, "sessions carried over");
    assert.equal(JSON.parse(await Deno.readTextFile(path)).format, "sumshare-agent-state/2");
    assert.equal(state.hasLegacy("chol"), true);
    const data = await readVariable(chol);
    assert.equal(state.answeredSet("chol", data.version), undefined, "not matched yet");
    await state.adoptLegacy("chol", data.version, await legacyVersions(data.values, chol.scale));
    assert.deepEqual(state.answeredSet("chol", data.version), ["alice", "bob", "north"]);
    assert.throws(
      () => checkContributors(chol, data.version, ["bob", "north"], state),
      PolicyRefusal,
      "the old answer still forbids a subset",
    );
    // Other data is not matched by the old record.
    await csv(dir, ["182.0", "240"]);
    const other = await readVariable(chol);
    await state.adoptLegacy("chol", other.version, await legacyVersions(other.values, 1));
    assert.equal(state.answeredSet("chol", other.version), undefined);
    // And the upgrade survives a restart.
    state.close();
    const again = await AgentState.open(path);
    assert.deepEqual(again.answeredSet("chol", data.version), ["alice", "bob", "north"]);
    assert.equal(await again.claimSession("a".repeat(32)), false, "moved to PATH.sessions");
    assert.equal(JSON.parse(await Deno.readTextFile(path)).sessions, undefined);
    again.close();
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent state: session ids are appended, not rewritten: the state file does not grow with them (review 3, F8)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "north.state.json");
    const state = await AgentState.open(path);
    const size = (await Deno.stat(path)).size;
    const ids = Array.from({ length: 500 }, (_, i) => i.toString(16).padStart(32, "0"));
    for (const id of ids) assert.equal(await state.claimSession(id), true);
    await state.recordJoined(Date.now());
    assert.ok((await Deno.stat(path)).size < size + 100, "the JSON holds no session ids");
    const log = await Deno.readTextFile(`${path}.sessions`);
    assert.equal(log, ids.map((id) => `${id}\n`).join(""));
    assert.equal((await Deno.stat(`${path}.sessions`)).mode! & 0o777, 0o600);
    state.close();

    // A crash mid-append leaves a cut line: the next id still gets a line of its own.
    await Deno.writeTextFile(`${path}.sessions`, "0123", { append: true });
    const again = await AgentState.open(path);
    for (const id of ids) assert.equal(await again.claimSession(id), false, "a replay");
    const fresh = "f".repeat(32);
    assert.equal(await again.claimSession(fresh), true);
    again.close();
    const third = await AgentState.open(path);
    assert.equal(await third.claimSession(fresh), false);
    assert.ok((await Deno.readTextFile(`${path}.sessions`)).endsWith(`\n0123\n${fresh}\n`));
    third.close();
  } finally {
    await removeDir(dir);
  }
});

Deno.test("agent data: rescaling is exact or refused, never rounded (review 15, F4)", () => {
  // 333333 · 10^15 is not a double: it would round down by 32768, below a bin edge.
  assert.throws(
    () => atScale(Float64Array.of(1, 333_333), 0, 15),
    (e) => e instanceof RangeError && !e.message.includes("333"),
  );
  assert.deepEqual([...atScale(Float64Array.of(1, 333_333), 0, 9)], [1e9, 333_333e9]);
  assert.deepEqual([...atScale(Float64Array.of(9_007_199_254_740_991), 0, 0)], [2 ** 53 - 1]);
});
