/**
 * A child process of the simulator (the hospital or a worker): its stdout
 * collected whole, its stderr as lines (the latest kept for diagnostics),
 * and a wait for a line that matches.
 *
 * @module
 */

import { unstamped } from "../log.ts";
import { textLines } from "../demo.ts";
import { TimeoutError } from "../errors.ts";

/** Stderr lines kept for a failure message. */
const KEPT_LINES = 40;

/** One spawned process. */
export class Child {
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly stdout: Promise<string>;
  readonly #stderrDone: Promise<void>;
  #tail: string[] = [];
  #watchers: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  /** Every stderr line matching one of these is kept in full (e.g. a resources line). */
  readonly #keep: RegExp | undefined;
  readonly kept: string[] = [];

  constructor(
    name: string,
    command: string[],
    options: { stdin?: string; keep?: RegExp } = {},
  ) {
    this.name = name;
    this.#keep = options.keep;
    const child = new Deno.Command(command[0]!, {
      args: command.slice(1),
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      void writer.write(new TextEncoder().encode(options.stdin))
        .then(() => writer.close())
        .catch(() => {}); // a child that died early: its exit status tells
    }
    this.stdout = new Response(child.stdout).text();
    this.#stderrDone = (async () => {
      // Log lines come stamped with the time; what is matched is what follows the stamp.
      for await (const stampedLine of textLines(child.stderr)) {
        const line = unstamped(stampedLine);
        this.#tail.push(line);
        if (this.#tail.length > KEPT_LINES) this.#tail.shift();
        if (this.#keep?.test(line)) this.kept.push(line);
        for (const watcher of [...this.#watchers]) {
          const match = watcher.pattern.exec(line);
          if (match) {
            this.#watchers.splice(this.#watchers.indexOf(watcher), 1);
            watcher.resolve(match);
          }
        }
      }
    })();
  }

  /** Waits for a stderr line matching `pattern`, at most `ms`. */
  waitForLine(pattern: RegExp, ms: number): Promise<RegExpExecArray> {
    const { promise, resolve, reject } = Promise.withResolvers<RegExpExecArray>();
    const timer = setTimeout(
      () => reject(new TimeoutError(`${this.name} printed no line like ${pattern} in ${ms} ms`)),
      ms,
    );
    this.#watchers.push({ pattern, resolve });
    this.#child.status.then(() => this.#stderrDone).then(() =>
      reject(new Error(`${this.name} exited before printing ${pattern}: ${this.tail()}`))
    );
    return promise.finally(() => clearTimeout(timer));
  }

  /** Waits for the exit and the end of its output. */
  async finish(): Promise<{ code: number; stdout: string }> {
    const status = await this.#child.status;
    await this.#stderrDone;
    return { code: status.code, stdout: await this.stdout };
  }

  /** The latest stderr lines, joined, for a failure message. */
  tail(lines = 8): string {
    return this.#tail.slice(-lines).join(" | ");
  }

  /** Kills the process if it still runs. */
  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}
