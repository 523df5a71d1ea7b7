/**
 * Never a wrong value, never an echoed one, through the command line: values
 * that cannot be held exactly are refused with exit 2 before anything is sent
 * (no network, no credentials needed), and the refusal never shows the value.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertValueNotPrinted, hospitalArgs, removeDir } from "./helpers.ts";
import { runMain } from "./run_main.ts";
import { P_BIG } from "../lib/field.ts";

/** Credentials that do not exist: a value that got past parsing fails at load with exit 1. */
const NO_CERTS = "/nonexistent/sumshare-exactness-certs";

function peerArgs(...extra: string[]): string[] {
  return ["peer", "--name", "alice", "--hospital", "127.0.0.1:1", "--certs", NO_CERTS, ...extra];
}

/** Numbers a refusal may name: the limits, which are public. */
const PUBLIC_NUMBERS = new Set([2n ** 53n - 1n, 2n ** 53n, P_BIG].map(String));

/**
 * Asserts `output` shows none of `text`'s value: not the text itself, not its
 * digits (a sign or point dropped, or truncated to 6 digits or more), and not
 * the double it would round to (9007199254740993 prints as …992).
 */
function assertNotEchoed(output: string, text: string): void {
  const context = `${JSON.stringify(text)} echoed in:\n${output}`;
  assert.ok(!output.includes(text), context);
  const digits = text.replace(/[^0-9]/g, "").replace(/^0+/, "");
  if (/^[0-9]+$/.test(text)) assertValueNotPrinted(output, BigInt(text), context);
  // Small values' roundings (0.05 to 0) say nothing; large ones are the value.
  const double = Math.abs(Number(text));
  if (Number.isFinite(double) && double >= 1e6) {
    assert.ok(!output.includes(String(double)), `${context}\n(as the double ${double})`);
    if (double < 1e21) assertValueNotPrinted(output, BigInt(Math.round(double)), context);
  }
  for (const run of output.match(/[0-9]{6,}/g) ?? []) {
    if (PUBLIC_NUMBERS.has(run)) continue;
    assert.ok(!digits.includes(run), `${context}\n(the digits ${run})`);
  }
}

Deno.test("a --value of 2^53 or more is refused with exit 2 and never echoed", async () => {
  const cases: [string, string[]][] = [
    ["9007199254740993", []],
    ["9007199254740992", []],
    ["-9007199254740993", []],
    ["1e30", []],
    ["1E+30", []],
    ["123456789012345678901234567890", []],
    ["-123456789012345678901234567890", []],
    ["9.007199254740993e15", []],
    ["90071992547409930e-1", []],
    ["90071992547409.93", ["--scale", "2"]],
    ["1e9999", []],
    ["9".repeat(400), []],
  ];
  for (const [value, extra] of cases) {
    for (const spelled of [value, `1,${value}`, `${value},2`]) {
      const r = await runMain(peerArgs("--value", spelled, ...extra));
      assert.equal(r.code, 2, `--value ${spelled}: exit ${r.code}\n${r.output}`);
      assert.match(r.output, /too large/, spelled);
      assertNotEchoed(r.output, value);
    }
  }
});

Deno.test("--value forms that are not exact at the scale are refused with exit 2, never echoed", async () => {
  const cases: [string, number][] = [
    ["5.0e-02", 0],
    ["1.0e-2", 0],
    ["10e-3", 0],
    ["100e-5", 0],
    ["-10e-3", 0],
    ["10e-5", 2],
    ["9007199254740993.5", 0],
    ["1.000000000000000000001", 15],
  ];
  for (const [value, scale] of cases) {
    const r = await runMain(peerArgs("--value", value, "--scale", String(scale)));
    assert.equal(r.code, 2, `--value ${value} --scale ${scale}: exit ${r.code}\n${r.output}`);
    assert.match(r.output, /decimal places/, value);
    assertNotEchoed(r.output, value);
  }
  // Exact in exponent notation: accepted, so the peer goes on to its credentials.
  for (const value of ["1.50e1", "0.0e5", "-0", "5e-0"]) {
    const r = await runMain(peerArgs("--value", value));
    assert.equal(r.code, 1, `--value ${value} should parse: ${r.output}`);
    assert.match(r.output, /Cannot read|certificate|nonexistent/i, value);
  }
});

Deno.test("CSV, line and JSON inputs refuse mis-scaled exponent forms, naming only the line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-exactness-" });
  try {
    const files: [string, string, string[]][] = [
      ["rows.csv", "id,x\n1,5.0e-02\n2,1.0e-2\n3,1\n", ["--column", "x"]],
      ["lines.txt", "3\n10e-3\n1\n", []],
      ["items.json", '[1, "100e-5", 2]', []],
    ];
    for (const [name, content, extra] of files) {
      const path = join(dir, name);
      await Deno.writeTextFile(path, content);
      const r = await runMain(peerArgs("--input", path, ...extra));
      assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.output}`);
      assert.match(
        r.output,
        /(line|item) 2\b.*has more than 0 decimal places/,
        `${name}: ${r.output}`,
      );
      for (const value of ["5.0e-02", "10e-3", "100e-5"]) assertNotEchoed(r.output, value);
    }
  } finally {
    await removeDir(dir);
  }
});

Deno.test("--max and histogram bounds refuse mis-scaled and oversize exponent forms", async () => {
  const hospital = (...extra: string[]) =>
    runMain(hospitalArgs(NO_CERTS, { peers: 3, json: false }, extra));
  const cases: [string[], RegExp][] = [
    [["--max", "10e-3"], /Invalid --max: has more than 0 decimal places/],
    [["--max", "1.0e-2", "--scale", "1"], /Invalid --max: has more than 1 decimal places/],
    [["--max", "1e9999"], /Invalid --max/],
    [["--query", "histogram:0:10e-3:2"], /decimal places/],
    [["--query", "histogram:-100e-5:1:2"], /decimal places/],
    [["--query", "histogram:0:1e9999:2"], /too large/],
  ];
  for (const [extra, pattern] of cases) {
    const r = await hospital(...extra);
    assert.equal(r.code, 2, `${extra.join(" ")}: exit ${r.code}\n${r.output}`);
    assert.match(r.output, pattern, extra.join(" "));
  }
  // The exact spelling of the same bounds passes parsing (and fails later, at the credentials).
  const r = await hospital("--max", "10e-3", "--scale", "2");
  assert.equal(r.code, 1, r.output);
});
