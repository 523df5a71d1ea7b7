/**
 * The QUERY of `sumshare ask`: a kind and a variable, and for a histogram its
 * bins, e.g. `mean chol` or `histogram chol 0:400:20`.
 *
 * @module
 */

/** A question: which variable, and the query spec the round runs. */
export interface AskQuery {
  variable: string;
  /** `sum`, `count`, `mean`, `variance`, `histogram:LOW:HIGH:BINS` or `vector`. */
  query: string;
}

const VARIABLE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const SIMPLE = new Set(["sum", "count", "mean", "variance", "vector"]);
const FORMS =
  "sum VAR, count VAR, mean VAR, variance VAR, histogram VAR LOW:HIGH:BINS or vector VAR";

/** Raised for a QUERY that is not one of the forms. */
export class AskQueryError extends Error {
  override name = "AskQueryError";
}

/** Parses QUERY words (one quoted string of them works too). */
export function parseAskQuery(words: readonly string[]): AskQuery {
  const parts = words.flatMap((w) => w.trim().split(/\s+/)).filter((w) => w !== "");
  const [kind, variable, bins, ...rest] = parts;
  if (kind === undefined || variable === undefined) {
    throw new AskQueryError(`Missing QUERY: expected ${FORMS}`);
  }
  if (!VARIABLE.test(variable)) {
    throw new AskQueryError(
      "Invalid QUERY: a variable name is a letter, then up to 63 letters, digits, '_' or '-'",
    );
  }
  if (SIMPLE.has(kind) && bins === undefined) return { variable, query: kind };
  if (kind === "histogram" && bins !== undefined && rest.length === 0) {
    if (!/^[0-9.]+:[0-9.]+:[0-9]+$/.test(bins)) {
      throw new AskQueryError("Invalid QUERY: a histogram's bins are LOW:HIGH:BINS, e.g. 0:400:20");
    }
    return { variable, query: `histogram:${bins}` };
  }
  throw new AskQueryError(`Invalid QUERY: expected ${FORMS}`);
}
