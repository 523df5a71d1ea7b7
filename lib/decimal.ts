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
 * Parses `text` as a decimal and returns value × 10^scale as a BigInt.
 * Refuses text that is not a plain number and values with more decimal
 * places than `scale`.
 */
export function parseScaled(text: string, scale: number): bigint {
  const m = NUMBER.exec(text.trim());
  if (!m) throw new DecimalError("not a number");
  const [, sign, whole, fraction = "", exponent = "0"] = m;
  let digits = whole! + fraction;
  // value = digits × 10^(exponent − fraction.length); scaled = value × 10^scale.
  const shift = Number(exponent) - fraction.length + scale;
  if (shift < 0) {
    const dropped = digits.slice(digits.length + shift);
    if (/[1-9]/.test(dropped)) {
      throw new DecimalError(`has more than ${scale} decimal places (use --scale)`);
    }
    digits = digits.slice(0, digits.length + shift) || "0";
  } else {
    digits += "0".repeat(shift);
  }
  const value = BigInt(digits);
  return sign === "-" ? -value : value;
}

/** Formats a scaled integer back as a decimal string. */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return (negative ? "-" : "") + text;
}
