/**
 * Party names and network addresses as the user types them.
 *
 * @module
 */

const PARTY_NAME = /^[a-z0-9_-]{1,32}$/;

/** Raised for a malformed party name or address. */
export class InvalidNameError extends Error {
  override name = "InvalidNameError";
}

/** Whether `name` is a valid party name: 1–32 of a–z, 0–9, `-` and `_`. */
export function isPartyName(name: string): boolean {
  return PARTY_NAME.test(name);
}

/** Returns `name` if it is a valid party name, else throws with the rule. */
export function checkPartyName(name: string): string {
  if (!isPartyName(name)) {
    throw new InvalidNameError(
      `Invalid party name ${
        JSON.stringify(name)
      }: use 1–32 characters of lowercase letters, digits, '-' and '_'`,
    );
  }
  return name;
}

/** A host and port, as in `127.0.0.1:4000` or `[::1]:4000`. */
export interface HostPort {
  hostname: string;
  port: number;
}

/** Parses `HOST:PORT`; port 0 is allowed when `allowZero` is set. */
export function parseHostPort(text: string, { allowZero = false } = {}): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  const hostname = m ? (m[1] ?? m[2] ?? "") : "";
  if (!m || hostname === "" || port > 65535 || (port === 0 && !allowZero)) {
    throw new InvalidNameError(
      `Invalid address ${JSON.stringify(text)}: expected HOST:PORT with a port from ${
        allowZero ? 0 : 1
      } to 65535`,
    );
  }
  return { hostname, port };
}

/** Formats a host and port, bracketing IPv6 literals. */
export function formatHostPort({ hostname, port }: HostPort): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
