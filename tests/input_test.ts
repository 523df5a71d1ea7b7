/**
 * `--input FILE`: errors about a peer's numbers say where (line, item,
 * column) and never what, a header row is told from a first row of data, JSON
 * numbers are read exactly, standard input and FIFOs are read once, and a file
 * that cannot be read says why.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describeError } from "../lib/errors.ts";
import { dataFromBytes, readInputFile } from "../lib/input.ts";
import { encodeInput, parseQuery, vectorLayout } from "../lib/query.ts";
import { isSegmentedFieldVector } from "../lib/field.ts";
import { assertValueNotPrinted, compiledFlags, removeDir } from "./helpers.ts";
import { runMain } from "./run_main.ts";

/** Distinctive private values: none may appear in any message. */
const SECRETS = [987654, 876543, 765432, 654321];

/** Writes `files` into a fresh temporary folder; returns the folder. */
async function tempFiles(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-input-" });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

/** The refusal `readInputFile` raises, as a log line would show it (causes included). */
async function refusal(path: string, options: { scale: number; column?: string }) {
  try {
    const data = await readInputFile(path, options);
    assert.fail(`${path} was read: ${data.values.length} numbers`);
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    return { error: error as Error, text: describeError(error) };
  }
}

function assertNoSecret(text: string, label: string): void {
  for (const value of SECRETS) {
    assertValueNotPrinted(text, value, `${label}: shows ${value}: ${text}`);
  }
}

Deno.test("errors about a file's numbers name the line, item or column, never a value", async () => {
  const dir = await tempFiles({
    "vector.json": "[987654, 876543, 765432, 654321]",
    "multiline.json": "[\n  987654,\n  876543\n]\n",
    "syntax.json": "[987654, 876543 765432]",
    "token.json": "[987654, x]",
    "item.json": "[987654, 876543, 654321.5]",
    "header.csv": "age,weight\n987654,876543\n765432,654321.5\n",
    "headerless.csv": "987654,876543\n765432,654321\n",
    "lines.txt": "987654\n876543\n765432\n",
    "decimal-lines.txt": "987654\n876543\n654321.5\n",
  });
  const file = (name: string) => join(dir, name);
  const cases: [string, { scale: number; column?: string }, RegExp][] = [
    // The reproduction: a JSON vector read as CSV printed the whole vector.
    [
      "vector.json",
      { scale: 0, column: "x" },
      /^line 1: the file has no header row \(it looks like a JSON array.*leave out --column\)$/,
    ],
    ["multiline.json", { scale: 0, column: "x" }, /^line 1: no column named "x" \(it looks like/],
    // The parser's own message quotes the file: neither it nor the error may be kept.
    ["syntax.json", { scale: 0 }, /^line 1 column 17: not valid JSON$/],
    ["token.json", { scale: 0 }, /^not valid JSON$/],
    ["item.json", { scale: 0 }, /^item 3: has more than 0 decimal places/],
    ["header.csv", { scale: 0, column: "weight" }, /^line 3, column "weight": has more than 0/],
    ["headerless.csv", { scale: 0, column: "age" }, /^line 1: the file has no header row \(--/],
    ["lines.txt", { scale: 0, column: "age" }, /^line 1: the file has no header row/],
    ["decimal-lines.txt", { scale: 0 }, /^line 3: has more than 0 decimal places/],
  ];
  try {
    for (const [name, options, expected] of cases) {
      const { error, text } = await refusal(file(name), options);
      assert.match(error.message, expected, name);
      assertNoSecret(text, name);
    }
    // End to end, as the peer prints it (before any connection is tried).
    const { code, output } = await runMain(
      [
        "peer",
        "--name",
        "a",
        "--input",
        file("vector.json"),
        "--column",
        "x",
        "--hospital",
        "127.0.0.1:1",
      ],
    );
    assert.equal(code, 2);
    assert.match(output, /Invalid --input line 1: the file has no header row/);
    assertNoSecret(output, "peer --column on JSON");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a header row is told from data: names are echoed, a number means there is none", async () => {
  const dir = await tempFiles({
    "names.csv": 'age,"weight, kg",\u001b[31mred\nx,1,2\n',
    "numbered.csv": "region,2020\nnorth,987654\n",
    "money.csv": '"$987,654",12%\n"$876,543",13%\n',
    "empty.csv": "",
    "twice.csv": "age,age\n1,2\n",
  });
  const file = (name: string) => join(dir, name);
  try {
    const names = await refusal(file("names.csv"), { scale: 0, column: "height" });
    // Quoted and escaped: a header name cannot move the terminal's cursor or colour.
    assert.equal(
      names.error.message,
      'line 1: no column named "height" (columns: "age", "weight, kg", "\\u001b[31mred")',
    );
    const many = Array.from({ length: 12 }, (_, i) => `c${i + 1}`).join(",");
    await Deno.writeTextFile(file("many.csv"), `${many}\n${many.replace(/c/g, "")}\n`);
    assert.match(
      (await refusal(file("many.csv"), { scale: 0, column: "x" })).error.message,
      /"c10", and 2 more\)$/,
    );
    for (const name of ["numbered.csv", "money.csv", "empty.csv"]) {
      const { error, text } = await refusal(file(name), { scale: 0, column: "region" });
      assert.match(error.message, /^line 1: the file has no header row/, name);
      assertNoSecret(text, name);
    }
    // Which of two same-named columns was meant cannot be known.
    assert.match(
      (await refusal(file("twice.csv"), { scale: 0, column: "age" })).error.message,
      /more than one column is named "age"/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("JSON numbers are read from their text, exactly or not at all", async () => {
  // JSON.parse rounds these to doubles that are whole (1) or zero before any check could see them.
  const dir = await tempFiles({
    "digits.json": "[2, 1.0000000000000001]",
    "underflow.json": "[2, 1e-400]",
    "plain.json": '[0.1, 12345678901234.5, "3.5", 7]',
    "exponents.json": "[2.5e1, 120e-1, 0.1, 1.00000000000000000]",
    // 16 digits: the nearest double is 8.000000000000002.
    "sixteen.json": "[8.000000000000001, 0.1]",
  });
  try {
    for (const name of ["digits.json", "underflow.json"]) {
      const { error } = await refusal(join(dir, name), { scale: 0 });
      assert.match(error.message, /^item 2: has more than 0 decimal places/, name);
    }
    const plain = await readInputFile(join(dir, "plain.json"), { scale: 1 });
    assert.deepEqual([...plain.values], [1, 123456789012345, 35, 70]);
    const exponents = await readInputFile(join(dir, "exponents.json"), { scale: 1 });
    assert.deepEqual([...exponents.values], [250, 120, 1, 10]);
    const sixteen = await readInputFile(join(dir, "sixteen.json"), { scale: 15 });
    assert.deepEqual([...sixteen.values], [8000000000000001, 100000000000000]);
  } finally {
    await removeDir(dir);
  }
});

/** A random decimal text: up to 18 digits, sometimes a fraction, sometimes an exponent. */
function randomDecimal(): string {
  const [a, b, c, d] = crypto.getRandomValues(new Uint32Array(4));
  const digits = Array.from(
    { length: 1 + a! % 18 },
    (_, i) =>
      String(
        crypto.getRandomValues(new Uint8Array(1))[0]! % (i === 0 ? 9 : 10) + (i === 0 ? 1 : 0),
      ),
  ).join("");
  const point = b! % (digits.length + 1);
  let text = point === 0 || point === digits.length
    ? digits
    : `${digits.slice(0, point)}.${digits.slice(point)}`;
  if (c! % 4 === 0) text = `0.${"0".repeat(c! % 17)}${digits}`;
  if (d! % 5 === 0) text += `e${d! % 2 ? "-" : ""}${d! % 30}`;
  return d! % 3 === 0 ? `-${text}` : text;
}

Deno.test("a JSON number reads as the same value as its text on a line, or both are refused", () => {
  // The line format never goes through a double: its parse is the exact reference.
  const bytes = (text: string) => new TextEncoder().encode(text);
  const outcome = (read: () => { values: Float64Array }) => {
    try {
      return String(read().values[0]);
    } catch (error) {
      return `refused: ${(error as Error).message.replace(/^(item|line) 1: /, "")}`;
    }
  };
  for (let i = 0; i < 2000; i++) {
    const text = randomDecimal();
    const scale = i % 16;
    const fromJson = outcome(() => dataFromBytes(bytes(`[${text}]`), { scale }));
    const fromLine = outcome(() => dataFromBytes(bytes(`${text}\n`), { scale }));
    assert.equal(fromJson, fromLine, `${text} at scale ${scale}`);
  }
});

Deno.test("JSON's -0 is the element 0 of a vector (review 15, F1: such a vector was refused)", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  for (const text of ["[-0, 5]", "[-0.0, 5]"]) {
    const data = dataFromBytes(bytes(text), { scale: 0 });
    // Read as it was (an agent hashes the numbers as read: its data
    // versions, and with them its answered sets, stay as they were; review 16).
    assert.ok(Object.is(data.values[0], -0), text);
    const query = parseQuery("vector:2", 0);
    const layout = vectorLayout(query, { max: 10n, maxRows: 1, participants: 3 });
    const x = encodeInput(query, data, { scale: 0, layout });
    assert.ok(Object.is(x[0], 0), `${text}: encoded as +0`);
    assert.ok(isSegmentedFieldVector(x, layout.segments), `${text}: a valid input`);
  }
});

/** Runs `script` (TypeScript) with the compiled binary's permissions, `stdin` piped in. */
async function runScript(dir: string, script: string, stdin: string) {
  const path = join(dir, "script.ts");
  await Deno.writeTextFile(path, script);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", ...compiledFlags(), path],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert.equal(code, 0, text(stderr));
  return text(stdout);
}

Deno.test("--input /dev/stdin reads the pipe once, with only read permission", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-input-" });
  const lib = new URL("../lib/input.ts", import.meta.url).href;
  try {
    // A special file Deno will not open with read permission alone: the refusal says why.
    const out = await runScript(
      dir,
      `import { readInputFile } from ${JSON.stringify(lib)};
const data = await readInputFile("/dev/stdin", { scale: 1 });
let refusal = "";
try {
  await readInputFile("/proc/self/status", { scale: 0 });
} catch (error) {
  refusal = error.name + ": " + error.message;
}
console.log(JSON.stringify({ values: [...data.values], where: data.where(2), refusal }));
`,
      "1.5\n\n2\n3.25e1\n",
    );
    const result = JSON.parse(out);
    assert.deepEqual(result.values, [15, 20, 325]);
    assert.equal(result.where, "line 4");
    assert.match(
      result.refusal,
      /^FileError: Cannot read --input \/proc\/self\/status: sumshare is not allowed to read this special file/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("a FIFO is read once, not streamed twice like a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sumshare-input-" });
  const fifo = join(dir, "numbers");
  try {
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(made.code, 0, "mkfifo");
    // Opening a FIFO waits for the other end, so the writer runs alongside the reader.
    const written = Deno.writeTextFile(fifo, "4\n5\n6\n");
    const reading = readInputFile(fifo, { scale: 0 });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"late">((resolve) =>
      timer = setTimeout(() => resolve("late"), 10_000)
    );
    const first = await Promise.race([reading, deadline]);
    clearTimeout(timer);
    if (first === "late") {
      // A second open waits for a writer that will never come: be that writer, then fail.
      (await Deno.open(fifo, { write: true })).close();
      await reading.catch(() => {});
      await written;
      assert.fail("reading the FIFO did not finish: it was opened a second time");
    }
    await written;
    assert.deepEqual([...first.values], [4, 5, 6]);
  } finally {
    await removeDir(dir);
  }
});

/** Whether this process reads a file with no permissions at all (root does). */
async function readsUnreadableFiles(): Promise<boolean> {
  const path = await Deno.makeTempFile({ prefix: "sumshare-input-" });
  try {
    await Deno.chmod(path, 0o000);
    await Deno.readFile(path);
    return true;
  } catch {
    return false;
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("a file that cannot be read says why, and never what it holds", async () => {
  const dir = await tempFiles({ "numbers.txt": "987654\n" });
  try {
    const cases: [string, RegExp][] = [
      [join(dir, "missing.txt"), /: no such file$/],
      [dir, /: it is a directory$/],
    ];
    for (const [path, why] of cases) {
      for (const column of [undefined, "x"]) {
        const { error } = await refusal(path, { scale: 0, ...(column ? { column } : {}) });
        assert.equal(error.name, "FileError");
        assert.ok(error.cause instanceof Error, "the system's error is kept as the cause");
        assert.ok(error.message.startsWith(`Cannot read --input ${path}: `), error.message);
        assert.match(error.message, why);
      }
    }
    // The peer's exit: a failure to run (1), one line, no stack.
    const { code, output } = await runMain(
      ["peer", "--name", "a", "--input", join(dir, "missing.txt"), "--hospital", "127.0.0.1:1"],
    );
    assert.equal(code, 1, output);
    assert.match(output, /^sumshare peer: Cannot read --input \S+missing.txt: no such file/);
    assert.doesNotMatch(output, /a bug|\n\s+at /);
  } finally {
    await removeDir(dir);
  }
});

Deno.test({
  name: "an unreadable file says permission denied",
  ignore: await readsUnreadableFiles(), // as root every file is readable
  fn: async () => {
    const dir = await tempFiles({ "numbers.txt": "987654\n" });
    try {
      await Deno.chmod(join(dir, "numbers.txt"), 0o000);
      const { error, text } = await refusal(join(dir, "numbers.txt"), { scale: 0 });
      assert.match(error.message, /^Cannot read --input \S+: permission denied$/);
      assertNoSecret(text, "unreadable");
    } finally {
      await removeDir(dir);
    }
  },
});
