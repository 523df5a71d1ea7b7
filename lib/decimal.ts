/**
 * Exact decimal numbers as scaled integers: with scale S, "12.5" is 1250 when
 * S = 2. Parsing is exact (no floating point), so a decimal input is either
 * represented exactly or refused.
 *
 * @module
 */

/** Raised for text that is not a number, or has more decimals than the scale. */
export class DecimalError extends Error {
  override name = "DecimalError";
}

const NUMBER = /^([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]{1,4}))?$/;

/** The largest scale accepted: 10^15 still keeps scaled values exact. */
export const MAX_SCALE = 15;

/**
 * The most digits a scaled value may have: far more than anything exact here
 * needs (values and --max stay below 2^53, 16 digits; a variance's Σx² over
 * every peer and row stays below 2^150, 46 digits), few enough that `1e9999`
 * is refused before a ten-thousand-digit string or BigInt is built.
 */
export const MAX_DIGITS = 100;

/**
 * Parses `text` as a decimal and returns value × 10^scale as a BigInt.
 * Refuses text that is not a plain number, values that are not a whole
 * multiple of 10^−scale (more decimal places than `scale`, in any notation),
 * and values of more than {@link MAX_DIGITS} digits once scaled. `-0` is 0.
 */
export function parseScaled(text: string, scale: number): bigint {
  const m = NUMBER.exec(text.trim());
  if (!m) throw new DecimalError("not a number");
  const [, sign, whole, fraction = "", exponent = "0"] = m;
  // value × 10^scale = significand × 10^power, with the significand's zeros
  // moved into the power: then the value is a whole multiple of 10^−scale
  // exactly when the power is not negative, whatever the notation.
  const digits = whole! + fraction;
  const first = digits.search(/[1-9]/);
  if (first < 0) return 0n; // every spelling of zero, "-0" included (a BigInt has no −0)
  let last = digits.length;
  while (digits.charCodeAt(last - 1) === 0x30) last--;
  const significand = digits.slice(first, last);
  const power = Number(exponent) - fraction.length + scale + (digits.length - last);
  if (power < 0) {
    throw new DecimalError(`has more than ${scale} decimal places (use --scale)`);
  }
  if (significand.length + power > MAX_DIGITS) throw new DecimalError("too large");
  const value = BigInt(significand + "0".repeat(power));
  return sign === "-" ? -value : value;
}

/** Formats a scaled integer back as a decimal string. */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return (negative ? "-" : "") + text;
}
