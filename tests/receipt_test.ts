/**
 * Receipts: a real round writes one, `sumshare verify` accepts it, and
 * changing any single field of it makes verification fail.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { InvalidReceiptError, verifyReceipt } from "../lib/receipt.ts";
import { CliProcess, makePki, removeDir, runRound } from "./helpers.ts";

/** Runs a round through the CLI; returns the receipt's text and the hospital's summary. */
async function roundReceipt(
  dir: string,
  hospitalArgs: string[],
  values: [string, string][],
): Promise<{ receipt: string; summary: Record<string, unknown> }> {
  const out = join(dir, "receipt.json");
  const summary = await runRound(
    dir,
    ["--out", out, ...hospitalArgs],
    values.map(([name, value]) => [name, ["--value", value]]),
  );
  return { receipt: await Deno.readTextFile(out), summary };
}

/** Every single-field change of a JSON value: leaves altered, list items dropped or repeated. */
function* mutations(value: unknown, path = ""): Generator<[string, (root: unknown) => unknown]> {
  const at = (
    root: unknown,
    change: (v: unknown) => unknown,
    keys: (string | number)[],
  ): unknown => {
    if (keys.length === 0) return change(root);
    const [key, ...rest] = keys;
    const copy = structuredClone(root) as Record<string | number, unknown>;
    copy[key!] = at(copy[key!], change, rest);
    return copy;
  };
  function* walk(
    v: unknown,
    keys: (string | number)[],
  ): Generator<[string, (root: unknown) => unknown]> {
    const where = path + keys.map((k) => `[${JSON.stringify(k)}]`).join("");
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        yield* walk(v[i], [...keys, i]);
        yield [
          `${where} without item ${i}`,
          (root) => at(root, (a) => (a as unknown[]).filter((_, j) => j !== i), keys),
        ];
      }
      if (v.length > 0) {
        yield [
          `${where} with item 0 repeated`,
          (root) => at(root, (a) => [...(a as unknown[]), (a as unknown[])[0]], keys),
        ];
      }
    } else if (typeof v === "object" && v !== null) {
      for (const key of Object.keys(v)) {
        yield* walk((v as Record<string, unknown>)[key], [...keys, key]);
        yield [`${where} without ${key}`, (root) =>
          at(root, (o) => {
            const { [key]: _gone, ...rest } = o as Record<string, unknown>;
            return rest;
          }, keys)];
      }
    } else if (typeof v === "number") {
      yield [`${where} + 1`, (root) => at(root, (x) => (x as number) + 1, keys)];
    } else if (typeof v === "string") {
      if (/^[0-9]+$/.test(v)) {
        yield [
          `${where} + 1`,
          (root) => at(root, (x) => (BigInt(x as string) + 1n).toString(), keys),
        ];
      }
      // Change one character in the middle (inside a PEM body, a name, a signature…).
      const mid = Math.floor(v.length / 2);
      const swapped = v[mid] === "a" ? "b" : "a";
      yield [`${where} character ${mid} changed`, (root) =>
        at(root, (x) => {
          const s = x as string;
          return s.slice(0, mid) + swapped + s.slice(mid + 1);
        }, keys)];
    }
  }
  yield* walk(value, []);
}

async function expectInvalid(receipt: unknown, ca: string, what: string): Promise<void> {
  await assert.rejects(verifyReceipt(receipt, ca), InvalidReceiptError, `not caught: ${what}`);
}

Deno.test("additive and threshold receipts verify, and every single change is caught", async () => {
  const dir = await makePki(["hospital", "alice", "bob", "charlie", "dave"]);
  try {
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));
    for (
      const [args, values] of [
        [[], [["alice", "10"], ["bob", "20"], ["charlie", "12"]]],
        [["--threshold", "3"], [["alice", "1"], ["bob", "2"], ["charlie", "3"], ["dave", "4"]]],
      ] as [string[], [string, string][]][]
    ) {
      const { receipt, summary } = await roundReceipt(dir, args, values);
      const good = JSON.parse(receipt);
      const verified = await verifyReceipt(good, ca);
      const expected = values.reduce((a, [, v]) => a + BigInt(v), 0n);
      assert.deepEqual(verified.sum, Float64Array.of(Number(expected)));
      assert.deepEqual(verified.result, { sum: Number(expected) });
      assert.equal(summary["sum"], Number(expected));
      assert.deepEqual(good.contributors, summary["contributors"]);
      assert.equal(good.partials.length, values.length);
      let count = 0;
      for (const [what, mutate] of mutations(good)) {
        await expectInvalid(mutate(good), ca, what);
        count++;
      }
      assert.ok(count > 60, `only ${count} mutations`);
      // Swapping two peers' partial sums keeps every value but not the signatures.
      const swapped = structuredClone(good);
      [swapped.partials[0].partial, swapped.partials[1].partial] = [
        good.partials[1].partial,
        good.partials[0].partial,
      ];
      await expectInvalid(swapped, ca, "swapped partial sums");
      // The same receipt against another consortium's CA.
      const other = await makePki(["x"]);
      await expectInvalid(good, await Deno.readTextFile(join(other, "ca.crt")), "another CA");
      await removeDir(other);
    }
  } finally {
    await removeDir(dir);
  }
});

Deno.test("sumshare verify prints a verdict and exits 0 for valid, 1 for not valid", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const { receipt } = await roundReceipt(dir, [], [["alice", "5"], ["bob", "6"]]);
    const file = join(dir, "receipt.json");
    const ok = await new CliProcess("verify", ["verify", file, "--ca", join(dir, "ca.crt")])
      .finish();
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^VALID: sum 11 over 2 contributors \(alice, bob\), session [0-9a-f]{32}, additive/,
    );
    const tampered = JSON.parse(receipt);
    tampered.sum = "12";
    await Deno.writeTextFile(file, JSON.stringify(tampered));
    const bad = await new CliProcess("verify", [
      "verify",
      file,
      "--ca",
      join(dir, "ca.crt"),
      "--json",
    ]).finish();
    assert.equal(bad.code, 1);
    assert.deepEqual(JSON.parse(bad.stdout), {
      valid: false,
      reason: "the hospital's signature does not match the receipt",
    });
    await Deno.writeTextFile(file, "not json");
    const junk = await new CliProcess("verify", ["verify", file, "--ca", join(dir, "ca.crt")])
      .finish();
    assert.equal(junk.code, 1);
    assert.match(junk.stdout, /NOT VALID: the file is not JSON/);
    const usage = await new CliProcess("verify", ["verify", "--ca", join(dir, "ca.crt")]).finish();
    assert.equal(usage.code, 2);
  } finally {
    await removeDir(dir);
  }
});
