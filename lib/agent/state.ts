/**
 * What a peer agent must remember across restarts, readable by its owner
 * only (0600): in one JSON file, replaced atomically on every change, when
 * it read data for rounds (for `max_rounds_per_day`) and for each variable
 * and data version the one contributor set it has answered for (the
 * answers-by-difference rule, lib/agent/policy.ts); in `PATH.sessions`, one
 * line appended (and synced) per INVITE, the session ids it has seen, so a
 * replayed invite is refused even after a restart. (Appending keeps a claim
 * O(1): rewriting every id ever seen on each INVITE made the cost grow
 * without bound.)
 *
 * Format 2 keys the answered sets on data versions that depend on the data
 * alone (lib/agent/data.ts). A format-1 file, whose versions hashed the
 * round's scale and the row order, is still read: its sessions and rounds
 * carry over, and its answered sets are kept as `legacy`, matched against
 * the versions format 1 would have given the data now read
 * ({@linkcode AgentState.adoptLegacy}), so an upgrade forgets nothing.
 *
 * One process at a time: an exclusive lock on `PATH.lock` (not on the state
 * file itself, which each save replaces) is held while the state is open. Two
 * agents of one config would otherwise each keep their own answered sets and
 * overwrite each other's, and so could answer two sets for one data version.
 *
 * @module
 */

import { FileError } from "../errors.ts";
import { dirname } from "node:path";

const FORMAT = "sumshare-agent-state/2";
const FORMAT_1 = "sumshare-agent-state/1";

type Answered = Record<string, Record<string, string[]>>;

interface StateFile {
  format: typeof FORMAT;
  /** Format 1 kept the session ids here; format 2 appends them to `PATH.sessions`. */
  sessions?: string[];
  /** Milliseconds since the epoch of each round whose data was read, in the last day. */
  joined: number[];
  /** variable → data version → the contributor set answered for, sorted. */
  answered: Answered;
  /** variable → format-1 data version → the set answered for, from a format-1 file. */
  legacy?: Answered;
}

function isAnswered(value: unknown): value is Answered {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.values(value).every((byVersion) =>
      typeof byVersion === "object" && byVersion !== null &&
      Object.values(byVersion).every((set) =>
        Array.isArray(set) && set.every((name) => typeof name === "string")
      )
    );
}

const DAY_MS = 86_400_000;

/** The agent's persistent state; every change is on disk before the call returns. */
export class AgentState {
  #path: string;
  #data: StateFile;
  #lock: Deno.FsFile;
  #writes: Promise<void> = Promise.resolve();
  #sessions = new Set<string>();
  #appends: Promise<void> = Promise.resolve();

  get #sessionsPath(): string {
    return `${this.#path}.sessions`;
  }

  private constructor(path: string, data: StateFile, lock: Deno.FsFile) {
    this.#path = path;
    this.#data = data;
    this.#lock = lock;
  }

  /**
   * Loads the state at `path`, or starts empty when there is no file yet;
   * refuses when another process (or another open here) holds it.
   */
  static async open(path: string): Promise<AgentState> {
    const lock = await lockState(path);
    try {
      return await AgentState.#load(path, lock);
    } catch (error) {
      lock.close();
      throw error;
    }
  }

  /** Releases the lock (the process's end does too). */
  close(): void {
    this.#lock.close();
  }

  static async #load(path: string, lock: Deno.FsFile): Promise<AgentState> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (cause) {
      if (cause instanceof Deno.errors.NotFound) {
        const state = new AgentState(path, {
          format: FORMAT,
          joined: [],
          answered: {},
        }, lock);
        await state.#loadSessions();
        await state.#save();
        return state;
      }
      throw new FileError(`Cannot read agent state ${path}: ${(cause as Error).message}`, {
        cause,
      });
    }
    let data: StateFile;
    let upgraded = false;
    try {
      const parsed = JSON.parse(text);
      if (
        (parsed.format !== FORMAT && parsed.format !== FORMAT_1) ||
        (parsed.sessions !== undefined && !Array.isArray(parsed.sessions)) ||
        !Array.isArray(parsed.joined) ||
        !isAnswered(parsed.answered) ||
        (parsed.legacy !== undefined && !isAnswered(parsed.legacy))
      ) throw new Error("not an agent state file");
      if (parsed.format === FORMAT_1) {
        // Format 1's versions are not this format's: kept aside, never dropped.
        data = { ...parsed, format: FORMAT, answered: {}, legacy: parsed.answered };
        upgraded = true;
      } else {
        data = parsed;
      }
    } catch (cause) {
      // Refusing to start beats forgetting what was answered.
      throw new FileError(
        `Cannot use agent state ${path}: it is damaged (${(cause as Error).message}); ` +
          "move it away only if this party's answers so far may be forgotten",
        { cause },
      );
    }
    const state = new AgentState(path, data, lock);
    await state.#loadSessions();
    if (upgraded || data.sessions !== undefined) {
      // The ids are in PATH.sessions now (synced): the JSON no longer carries them.
      delete data.sessions;
      await state.#save();
    }
    return state;
  }

  /** Records `session` as seen (on disk before it returns); false if it was seen before. */
  async claimSession(session: string): Promise<boolean> {
    if (this.#sessions.has(session)) return false;
    this.#sessions.add(session);
    await this.#appendSessions([session]);
    return true;
  }

  /** Reads `PATH.sessions` (and a format-1 file's ids, moved there). */
  async #loadSessions(): Promise<void> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.#sessionsPath);
    } catch (cause) {
      if (!(cause instanceof Deno.errors.NotFound)) {
        throw new FileError(
          `Cannot read agent state ${this.#sessionsPath}: ${(cause as Error).message}`,
          { cause },
        );
      }
    }
    // A line cut short by a crash was never claimed (the claim returns after the sync): kept
    // as seen, harmlessly, and ended so the next id starts on a line of its own.
    for (const line of text.split("\n")) if (line !== "") this.#sessions.add(line);
    const moved = (this.#data.sessions ?? []).filter((id) => !this.#sessions.has(id));
    for (const id of moved) this.#sessions.add(id);
    const prefix = text !== "" && !text.endsWith("\n") ? "\n" : "";
    if (moved.length > 0 || prefix !== "") await this.#appendSessions(moved, prefix);
  }

  async #appendSessions(ids: readonly string[], prefix = ""): Promise<void> {
    const run = this.#appends.then(async () => {
      const file = await Deno.open(this.#sessionsPath, {
        append: true,
        create: true,
        mode: 0o600,
      });
      try {
        await Deno.chmod(this.#sessionsPath, 0o600);
        const bytes = new TextEncoder().encode(prefix + ids.map((id) => `${id}\n`).join(""));
        for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
        await file.sync();
      } finally {
        file.close();
      }
    }).catch((cause) => {
      throw new FileError(
        `Cannot write agent state ${this.#sessionsPath}: ${(cause as Error).message}`,
        { cause },
      );
    });
    this.#appends = run.catch(() => {});
    await run;
  }

  /** Rounds joined in the 24 hours before `now`. */
  roundsInLastDay(now: number): number {
    return this.#data.joined.filter((t) => now - t < DAY_MS).length;
  }

  /** Records a round whose data was read at `now` (refused or not: see policy.ts). */
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

  /** Whether a format-1 file left answered sets for `variable`. */
  hasLegacy(variable: string): boolean {
    return Object.keys(this.#data.legacy?.[variable] ?? {}).length > 0;
  }

  /**
   * Carries a format-1 answered set over to `version`: `oldVersions` are the
   * versions format 1 would have given the same data (lib/agent/data.ts
   * `legacyVersions`); when one of them was answered for, its set becomes
   * this version's (any of them, if several: each was already answered, so
   * a repeat over it releases nothing new). No-op when `version` has a set.
   */
  async adoptLegacy(variable: string, version: string, oldVersions: string[]): Promise<void> {
    if (this.answeredSet(variable, version) !== undefined) return;
    const legacy = this.#data.legacy?.[variable] ?? {};
    const found = oldVersions.map((v) => legacy[v]).find((set) => set !== undefined);
    if (found !== undefined) await this.recordAnswered(variable, version, found);
  }

  #save(): Promise<void> {
    const text = JSON.stringify(this.#data);
    const run = this.#writes.then(() => writePrivateAtomically(this.#path, text));
    this.#writes = run.catch(() => {});
    return run;
  }
}

/** Opens `PATH.lock` and takes its exclusive lock without waiting; refuses when it is held. */
async function lockState(path: string): Promise<Deno.FsFile> {
  const lockPath = `${path}.lock`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, { read: true, write: true, create: true, mode: 0o600 });
  } catch (cause) {
    throw new FileError(`Cannot lock agent state ${path}: ${(cause as Error).message}`, { cause });
  }
  let locked: boolean;
  try {
    locked = await file.tryLock(true);
  } catch (cause) {
    file.close();
    throw new FileError(`Cannot lock agent state ${path}: ${(cause as Error).message}`, { cause });
  }
  if (!locked) {
    file.close();
    throw new FileError(
      `Cannot use agent state ${path}: another agent is running with it (${lockPath} is locked); ` +
        "two agents of one party would each keep their own answered sets",
    );
  }
  return file;
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
    // The rename itself is durable only once the folder is: without this a
    // power cut could bring back the state from before the set was recorded.
    const folder = await Deno.open(dirname(path) || ".", { read: true });
    try {
      await folder.sync();
    } finally {
      folder.close();
    }
  } catch (cause) {
    throw new FileError(`Cannot write agent state ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
}
