/**
 * What a peer agent must remember across restarts, in one JSON file readable
 * by its owner only (0600), replaced atomically on every change: the session
 * ids it has seen (a replayed invite is refused even after a restart), when
 * it joined rounds (for `max_rounds_per_day`), and for each variable and data
 * version the one contributor set it has answered for (the answers-by-
 * difference rule, lib/agent/policy.ts).
 *
 * @module
 */

import { FileError } from "../errors.ts";

interface StateFile {
  format: "sumshare-agent-state/1";
  sessions: string[];
  /** Milliseconds since the epoch of each round joined in the last day. */
  joined: number[];
  /** variable → data version → the contributor set answered for, sorted. */
  answered: Record<string, Record<string, string[]>>;
}

const DAY_MS = 86_400_000;

/** The agent's persistent state; every change is on disk before the call returns. */
export class AgentState {
  #path: string;
  #data: StateFile;
  #writes: Promise<void> = Promise.resolve();

  private constructor(path: string, data: StateFile) {
    this.#path = path;
    this.#data = data;
  }

  /** Loads the state at `path`, or starts empty when there is no file yet. */
  static async open(path: string): Promise<AgentState> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (cause) {
      if (cause instanceof Deno.errors.NotFound) {
        const state = new AgentState(path, {
          format: "sumshare-agent-state/1",
          sessions: [],
          joined: [],
          answered: {},
        });
        await state.#save();
        return state;
      }
      throw new FileError(`Cannot read agent state ${path}: ${(cause as Error).message}`, {
        cause,
      });
    }
    let data: StateFile;
    try {
      data = JSON.parse(text);
      if (
        data.format !== "sumshare-agent-state/1" || !Array.isArray(data.sessions) ||
        !Array.isArray(data.joined) || typeof data.answered !== "object" || data.answered === null
      ) throw new Error("not an agent state file");
    } catch (cause) {
      // Refusing to start beats forgetting what was answered.
      throw new FileError(
        `Cannot use agent state ${path}: it is damaged (${(cause as Error).message}); ` +
          "move it away only if this party's answers so far may be forgotten",
        { cause },
      );
    }
    return new AgentState(path, data);
  }

  /** Records `session` as seen; false if it was seen before. */
  async claimSession(session: string): Promise<boolean> {
    if (this.#data.sessions.includes(session)) return false;
    this.#data.sessions.push(session);
    await this.#save();
    return true;
  }

  /** Rounds joined in the 24 hours before `now`. */
  roundsInLastDay(now: number): number {
    return this.#data.joined.filter((t) => now - t < DAY_MS).length;
  }

  /** Records a round joined at `now`. */
  async recordJoined(now: number): Promise<void> {
    this.#data.joined = this.#data.joined.filter((t) => now - t < DAY_MS);
    this.#data.joined.push(now);
    await this.#save();
  }

  /** The contributor set answered for over `variable` at `version`, if any. */
  answeredSet(variable: string, version: string): readonly string[] | undefined {
    return this.#data.answered[variable]?.[version];
  }

  /** Records the contributor set answered for (only ever the first). */
  async recordAnswered(variable: string, version: string, set: readonly string[]): Promise<void> {
    const byVersion = this.#data.answered[variable] ??= {};
    if (byVersion[version] !== undefined) return;
    byVersion[version] = [...set].sort();
    await this.#save();
  }

  #save(): Promise<void> {
    const text = JSON.stringify(this.#data);
    const run = this.#writes.then(() => writePrivateAtomically(this.#path, text));
    this.#writes = run.catch(() => {});
    return run;
  }
}

/** Replaces `path` with `text` through a fresh 0600 file and a rename, so a crash leaves one or the other. */
async function writePrivateAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`;
  try {
    await Deno.remove(temporary).catch(() => {});
    await Deno.writeTextFile(temporary, text, { mode: 0o600, createNew: true });
    await Deno.chmod(temporary, 0o600);
    const file = await Deno.open(temporary, { read: true, write: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (cause) {
    throw new FileError(`Cannot write agent state ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}
