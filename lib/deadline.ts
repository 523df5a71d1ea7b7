/**
 * Waiting with a deadline: every wait in sumshare takes an `AbortSignal`
 * (usually `AbortSignal.timeout` combined with the round's own signal), so
 * nothing can hang past its timeout.
 *
 * @module
 */

import { TimeoutError } from "./errors.ts";

/** A promise with its resolve and reject exposed. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
  readonly settled: boolean;
}

/** Creates a {@linkcode Deferred}; its rejection is never "unhandled". */
export function deferred<T>(): Deferred<T> {
  let settled = false;
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  promise.catch(() => {});
  return {
    promise,
    resolve(value) {
      settled = true;
      resolve(value);
    },
    reject(reason) {
      settled = true;
      reject(reason);
    },
    get settled() {
      return settled;
    },
  };
}

/** The error a signal was aborted with, as an `Error`. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return new TimeoutError("Timed out");
  }
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** Resolves like `promise`, or rejects as soon as `signal` aborts. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * A signal that aborts after `ms` with a {@linkcode TimeoutError} saying
 * `what`, or when `parent` aborts.
 */
export function deadlineSignal(ms: number, what: string, parent?: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new TimeoutError(`Timed out after ${formatSeconds(ms)} ${what}`)),
    ms,
  );
  // Deno keeps the process alive for a pending timer; the deadline must not.
  Deno.unrefTimer(timer);
  controller.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return parent ? AbortSignal.any([controller.signal, parent]) : controller.signal;
}

/** What {@linkcode raceDeadline} reports when its own deadline won. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * Waits for `goal`, but no longer than `ms`, and no longer than `failure`
 * (a promise that only ever rejects) or `stop` allow. Resolves with the
 * goal's value, or {@linkcode TIMED_OUT} if the deadline alone ended the wait;
 * rejects if `failure` rejects or `stop` aborts first.
 */
export async function raceDeadline<T>(
  goal: Promise<T>,
  failure: Deferred<never>,
  ms: number,
  stop: AbortSignal,
): Promise<T | typeof TIMED_OUT> {
  const deadline = deadlineSignal(Math.max(ms, 1), "", stop);
  try {
    return await abortable(Promise.race([goal, failure.promise]), deadline);
  } catch (error) {
    if (deadline.aborted && !failure.settled && !stop.aborted) return TIMED_OUT;
    throw error;
  }
}

/** "30 s", "1.5 s". */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * Resolves after `ms`, or as soon as `signal` aborts, whichever comes first
 * (never rejects: a caller checks the signal after), and leaves no timer or
 * listener behind.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
