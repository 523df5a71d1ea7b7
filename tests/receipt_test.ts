/**
 * Receipts: a real round writes one, `sumshare verify` accepts it, and
 * changing any single field of it makes verification fail.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { toBase64 } from "../lib/encoding.ts";
import { loadIdentity, signTranscript } from "../lib/identity.ts";
import {
  canonicalJson,
  InvalidReceiptError,
  parseReceipt,
  type Receipt,
  verifyReceipt,
} from "../lib/receipt.ts";
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
    // A file that cannot be read fails the command (exit 1, the reason on
    // stderr), as the help and the README say: no verdict, no usage error.
    for (
      const [args, what] of [
        [[join(dir, "missing.json"), "--ca", join(dir, "ca.crt")], "receipt"],
        [[file, "--ca", join(dir, "missing.crt")], "--ca"],
        [[dir, "--ca", join(dir, "ca.crt")], "receipt"],
      ] as const
    ) {
      const unreadable = await new CliProcess("verify", ["verify", ...args]).finish();
      assert.equal(unreadable.code, 1, unreadable.stderr);
      assert.equal(unreadable.stdout, "");
      assert.match(unreadable.stderr, new RegExp(`^sumshare verify: Cannot read ${what} `));
      assert.doesNotMatch(unreadable.stderr, /a bug|Try 'sumshare/);
    }
  } finally {
    await removeDir(dir);
  }
});

/** `sumshare verify FILE` on `text`; the exit code and stdout. */
async function verifyText(
  dir: string,
  text: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, "candidate.json");
  await Deno.writeTextFile(file, text);
  return await new CliProcess("verify", ["verify", file, "--ca", join(dir, "ca.crt")]).finish();
}

Deno.test("a receipt with a key twice, at any depth, is not valid", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const { receipt } = await roundReceipt(dir, [], [["alice", "5"], ["bob", "6"]]);
    // The honest receipt still verifies: "sum" is a key in `result` and a
    // value of `query`, which the scan must tell apart.
    const good = await verifyText(dir, receipt);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /^VALID: sum 11 /);
    assert.ok(receipt.startsWith("{\n"));
    const forgeries: [string, string, string][] = [
      // A first-key-wins reader would see 123456; JSON.parse keeps the real 11.
      ["top level", receipt.replace("{\n", '{\n  "result": {"sum": 123456},\n'), "result"],
      ["escaped", receipt.replace("{\n", '{\n  "resul\\u0074": {"sum": 123456},\n'), "result"],
      ["nested", receipt.replace('"hospital": {', '"hospital": {"name": "mallory", '), "name"],
      [
        "in a list item",
        receipt.replace('"partials": [\n    {', '"partials": [\n    {"name": "bob", '),
        "name",
      ],
      ["spaced", receipt.replace('"result": {', '"result": {"sum"\n :\t123456, '), "sum"],
    ];
    for (const [what, text, key] of forgeries) {
      assert.notEqual(text, receipt, what);
      // JSON.parse alone cannot tell: it keeps the honest, later value.
      assert.deepEqual(JSON.parse(text), JSON.parse(receipt), what);
      const r = await verifyText(dir, text);
      assert.equal(r.code, 1, `${what}: ${r.stdout}`);
      assert.equal(
        r.stdout.trim(),
        `NOT VALID: the key "${key}" appears twice in one object`,
        what,
      );
    }
  } finally {
    await removeDir(dir);
  }
});

Deno.test("parseReceipt tells keys from values, escapes from quotes, and refuses deep nesting", () => {
  const unique = [
    '{"a": "a", "b": {"a": 1}, "c": [{"a": 1}, {"a": 2}], "d": ["a", "a"]}',
    String.raw`{"a": "x\":", "b": "\\", "c": "\u0022a\u0022:"}`,
    '{"a":{"a":{"a":{}}},"b":[]}',
  ];
  for (const text of unique) assert.deepEqual(parseReceipt(text), JSON.parse(text), text);
  const repeated = [
    '{"a": 1, "a": 1}',
    '{"a": 1, "b": {"c": [], "c": 2}}',
    '{"a": [{"x": 1, "y": 2, "x": 3}]}',
    String.raw`{"a\\": 1, "a\u005c": 2}`, // both are the key a\
    String.raw`{"\"": 1, "\u0022" : 2}`,
  ];
  for (const text of repeated) {
    assert.throws(() => parseReceipt(text), InvalidReceiptError, text);
  }
  assert.throws(() => parseReceipt("{"), /the file is not JSON/);
  assert.throws(() => parseReceipt('{"a": 1} x'), /the file is not JSON/);
  // A hundred thousand levels would overflow a recursive walk; refused by depth.
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  assert.throws(() => parseReceipt(deep), /nests deeper than 16 levels/);
  const ok = "[".repeat(16) + "]".repeat(16);
  assert.deepEqual(parseReceipt(ok), JSON.parse(ok));
});

Deno.test("every number and length in a receipt is bounded before use, even when the hospital signed it", async () => {
  const dir = await makePki(["hospital", "alice", "bob"]);
  try {
    const { receipt } = await roundReceipt(dir, [], [["alice", "5"], ["bob", "6"]]);
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));
    const { privateKey } = await loadIdentity("hospital", {
      ca: join(dir, "ca.crt"),
      cert: join(dir, "hospital.crt"),
      key: join(dir, "hospital.key"),
    });
    // A dishonest hospital signs whatever it likes: the bounds must not rely
    // on its signature failing.
    const signed = async (change: (r: Record<string, unknown>) => void): Promise<unknown> => {
      const { signature: _old, ...body } = JSON.parse(receipt) as Receipt;
      change(body as unknown as Record<string, unknown>);
      const signature = await signTranscript(privateKey, "receipt", [canonicalJson(body)]);
      return { ...body, signature: toBase64(signature) };
    };
    const good = JSON.parse(receipt) as Receipt;
    const cases: [string, (r: Record<string, unknown>) => void, RegExp][] = [
      ["scale 4·10^6", (r) => r["scale"] = 4_000_000, /^scale is not a whole number from 0 to 15$/],
      ["scale 16", (r) => r["scale"] = 16, /^scale is not a whole number from 0 to 15$/],
      ["maxRows 2^40", (r) => r["maxRows"] = 2 ** 40, /^maxRows is not a whole number from 1/],
      ["threshold 10^9", (r) => r["threshold"] = 1e9, /^threshold is not a whole number from 1/],
      ["a long query", (r) => r["query"] = "sum".padEnd(1_000_000, " "), /^query is longer than/],
      [
        "201 participants",
        (r) =>
          r["participants"] = Array.from({ length: 201 }, (_, i) => ({
            name: `p${String(i).padStart(3, "0")}`,
            x: i + 1,
            cert: good.participants[0]!.cert,
          })),
        /^participants has more than 200 items$/,
      ],
      [
        "a huge certificate",
        (r) => (r["participants"] as Receipt["participants"])[0]!.cert = "A".repeat(1_000_000),
        /^participants\[0\]\.cert is longer than/,
      ],
      [
        "more partial sums than participants",
        (r) => r["partials"] = [...good.partials, ...good.partials],
        /^partials has more than 2 items$/,
      ],
      [
        "more contributors than the most participants",
        (r) => r["contributors"] = Array.from({ length: 201 }, (_, i) => `c${i}`),
        /^contributors is not a list of at most 200 names$/,
      ],
    ];
    for (const [what, change, reason] of cases) {
      const forged = await signed(change);
      const began = performance.now();
      await assert.rejects(
        verifyReceipt(forged, ca),
        { name: "InvalidReceiptError", message: reason },
        what,
      );
      // Generous for a loaded machine; the unbounded scale alone took ~1 s.
      assert.ok(performance.now() - began < 500, `${what} took ${performance.now() - began} ms`);
    }
    // The hospital's own signature field is bounded too (it is not signed over).
    const longSignature = { ...good, signature: "A".repeat(1_000_000) };
    await assert.rejects(verifyReceipt(longSignature, ca), {
      name: "InvalidReceiptError",
      message: /^signature is not a 64-byte/,
    });
  } finally {
    await removeDir(dir);
  }
});
