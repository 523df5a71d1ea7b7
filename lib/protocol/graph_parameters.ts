/**
 * The degree K and threshold T of a sparse round (docs/protocol.md §18.6)
 * from the roster size n, an assumed fraction of colluding peers and an
 * assumed fraction of dropouts, for a hospital whose deviations the
 * consistency checks catch (fcp/secagg's SEMI_MALICIOUS_SERVER), following
 * the analysis of Bell et al. 2020 as fcp's graph_parameter_finder does.
 *
 * For the smallest even K (from 2) it accepts, with the counts
 * c = ⌊α·n⌋ colluders and d = ⌊δ·n⌋ dropouts:
 *
 * 1. The graph of honest survivors stays connected except with probability
 *    below 2^-41: a cut of H(n, K) needs K/2 consecutive bad (colluding or
 *    dropped) peers at two places of the ring; by a union bound over the
 *    n(n − K − 1)/2 pairs of places, (c + d)^(K) / n^(K) (falling powers).
 * 2. t1 = the least x with P(colluders among K neighbours > x) < 2^-41 / n
 *    (hypergeometric: K drawn from n of which c collude). A peer here holds
 *    a share of its own secrets (its window's K + 1 holders include it, and
 *    it reveals its own self-seed share when it survives), which fcp's
 *    bound leaves out, so T is raised twice over fcp's:
 *    - two conflicting views of a window: a hospital that tells some honest
 *      holders the owner survived and others that it dropped gets T shares
 *      of each kind (the owner's own self-seed share with the first) unless
 *      2T > K + 1 + colluders, so t1 := ⌈(t1 + K + 1 − 1.25)/2⌉ (fcp: K for
 *      K + 1);
 *    - an owner whose honest neighbours are reported unconfirmed goes on
 *      with T − 1 colluders and itself, so T − 1 must exceed the first t1
 *      too (this only binds when colluders may fill nearly a window).
 *    It changes fcp's rows where these matter, n = 100 at 5 % among them
 *    (K = 16, T = 11 became K = 18, T = 13; review 13), not n = 1,000 or
 *    10,000 at 5 %.
 * 3. t2 = the least x with P(survivors among K neighbours ≤ x) ≥ 2^-20 / n
 *    (K drawn from n of which n − d survive).
 * 4. Accept if t2 > t1, with T = max(t1 + 1, 2).
 *
 * So, under the assumed fractions (colluders and dropouts a uniformly random
 * subset of the roster, independent of the permutation), no peer has
 * colluders among its K neighbours enough for either attack of step 2
 * (2T − K − 1, or T − 1) and the honest survivors stay connected
 * except with probability below 2^-40; and a round fails for lack of T survivors in some
 * neighbourhood with probability below 2^-20.
 *
 * @module
 */

/** K and T for a sparse round. */
export interface GraphParameters {
  neighbors: number;
  threshold: number;
}

/** Why no parameters can be chosen. */
export class GraphParameterError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GraphParameterError";
  }
}

const SECURITY_BITS = 41; // 40 + 1: split over the two bad events
const CORRECTNESS_BITS = 20;
/** Keeps floating-point rounding of α·n from going the insecure way. */
const SMALL = 1e-14;

const logFactorials: number[] = [0];

/** ln(m!) for a whole m ≥ 0, by summing logarithms (exact enough for m ≤ 10^6). */
function logFactorial(m: number): number {
  for (let i = logFactorials.length; i <= m; i++) {
    logFactorials.push(logFactorials[i - 1]! + Math.log(i));
  }
  return logFactorials[m]!;
}

/** Hypergeometric: `sampled` drawn without replacement from `total`, of which `marked` are marked. */
class Hypergeometric {
  readonly #total: number;
  readonly #sampled: number;

  constructor(total: number, sampled: number) {
    this.#total = total;
    this.#sampled = sampled;
  }

  /** P(exactly x marked), with `counted` marked in the population. */
  pmf(x: number, counted: number): number {
    const n = this.#total;
    const k = this.#sampled;
    if (x < 0 || x > k || x > counted || n + x < counted + k) return 0;
    return Math.exp(
      logFactorial(k) + logFactorial(counted) + logFactorial(n - counted) +
        logFactorial(n - k) - logFactorial(x) - logFactorial(k - x) -
        logFactorial(counted - x) - logFactorial(n) - logFactorial(n - k - counted + x),
    );
  }

  /** P(at most x marked): summed downwards from x until the terms no longer count. */
  lowerTail(x: number, counted: number): number {
    const n = this.#total;
    const k = this.#sampled;
    let term = this.pmf(x, counted);
    let sum = 0;
    while (term > sum * 1e-16) {
      sum += term;
      // pmf(x − 1) from pmf(x)
      term *= x * (n - counted - k + x) / ((counted - x + 1) * (k - x + 1));
      x--;
    }
    return sum;
  }

  /** The largest x with P(at most x marked) < q (−1 if none). */
  #below(q: number, counted: number): number {
    const n = this.#total;
    const k = this.#sampled;
    // A Hoeffding bound gives a start below the answer; the walk up is exact.
    const start = Math.floor(Math.max(
      -1,
      counted + k - n - 1,
      k * (counted / n - Math.sqrt(-Math.log(q) / (2 * k))),
    ));
    let x = start;
    let cdf = this.lowerTail(x, counted);
    let term = this.pmf(x, counted);
    while (cdf < q && x < k) {
      term = term > 0
        ? term * (counted - x) * (k - x) / ((x + 1) * (n - counted - k + x + 1))
        : this.pmf(x + 1, counted);
      cdf += term;
      x++;
    }
    return x - 1;
  }

  /** The least x with P(more than x marked) < q, with `marked` marked. */
  upperQuantile(q: number, marked: number): number {
    // Marked above x ⇔ unmarked at most k − x − 1.
    return this.#sampled - this.#below(q, this.#total - marked) - 1;
  }

  /** The least x with P(at most x marked) ≥ q, with `marked` marked. */
  lowerQuantile(q: number, marked: number): number {
    const x = this.#below(q, marked);
    return this.lowerTail(x, marked) < q ? x + 1 : x;
  }
}

/** ln of the union bound of step 1 on the honest survivors' graph being cut. */
function logProbabilityCut(n: number, k: number, bad: number): number {
  if (k > bad) return -Infinity;
  const pairs = Math.log(n) + Math.log(n - k - 1) - Math.log(2);
  return pairs + logFactorial(bad) + logFactorial(n - k) - logFactorial(n) -
    logFactorial(bad - k);
}

/** T for degree K, or undefined if K is too small (steps 1–4). */
function thresholdFor(
  n: number,
  k: number,
  colluding: number,
  dropouts: number,
): number | undefined {
  if (logProbabilityCut(n, k, colluding + dropouts) >= -SECURITY_BITS * Math.LN2) return undefined;
  const draw = new Hypergeometric(n, k);
  const colluderBound = draw.upperQuantile(2 ** -SECURITY_BITS / n, colluding);
  const t2 = draw.lowerQuantile(2 ** -CORRECTNESS_BITS / n, n - dropouts);
  // Step 2: 2T > K + 1 + colluderBound (the window's K + 1 holders), and T − 1 > colluderBound.
  const t1 = Math.max(Math.ceil((colluderBound + k + 1 - 1.25) / 2), colluderBound + 1);
  if (t2 <= t1) return undefined;
  return Math.max(t1 + 1, 2);
}

/**
 * The smallest even K (and its T) that meets the guarantee above for a
 * roster of `n` with colluder fraction `colluders` and dropout fraction
 * `dropouts`; throws GraphParameterError if none below n − 1 does (small
 * rosters, large fractions: use the complete graph).
 */
export function graphParameters(
  n: number,
  options: { colluders: number; dropouts: number },
): GraphParameters {
  const { colluders, dropouts } = options;
  if (!Number.isInteger(n) || n < 2) throw new GraphParameterError(`Cannot size graph: n = ${n}`);
  if (!(colluders >= 0 && colluders < 1 && dropouts >= 0 && dropouts < 1)) {
    throw new GraphParameterError("Cannot size graph: fractions must be in [0, 1)");
  }
  if (colluders + 2 * dropouts > 0.9) {
    throw new GraphParameterError(
      "Cannot size graph: the colluder fraction plus twice the dropout fraction exceeds 0.9",
    );
  }
  const c = Math.floor((colluders + SMALL) * n);
  const d = Math.floor((dropouts + SMALL) * n);
  for (let k = 2; k < n - 1; k += 2) {
    const t = thresholdFor(n, k, c, d);
    if (t !== undefined) return { neighbors: k, threshold: t };
  }
  throw new GraphParameterError(
    `Cannot size graph: no sparse graph for ${n} peers meets the guarantee; use the complete graph`,
  );
}
