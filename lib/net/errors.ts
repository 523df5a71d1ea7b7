/**
 * TLS and socket failures as one-line sentences a user can act on.
 *
 * Deno (rustls) and its node:tls layer report failures in their own words:
 * `invalid peer certificate: BadSignature`, `received fatal alert:
 * DecryptError`, `socket hang up`, rustls' close_notify URL, `Bad resource
 * ID`. {@linkcode transportError} turns each into a
 * {@linkcode TransportError} whose message says what happened and what to
 * check, and whose {@linkcode TransportError.reason} a program can branch
 * on; the original error stays reachable as `cause`. Errors that mean a bug
 * in sumshare (a `TypeError`, or a socket used after this side closed it)
 * are not dressed up as network trouble: the former are returned unchanged,
 * the latter say "a bug" plainly.
 *
 * @module
 */

/** What went wrong, for a program to branch on; the message is for people. */
export type TransportFailure =
  /** Nothing listens at the address. */
  | "refused"
  /** The host name does not resolve. */
  | "unknown-host"
  /** No route to the host, or the network is down. */
  | "unreachable"
  /** Another process listens on the address. */
  | "address-in-use"
  /** The address is not one of this machine's, or may not be used. */
  | "address-unavailable"
  /** Deno's permissions do not allow this address (`--allow-net`). */
  | "permission"
  /** The other side did not answer in time. */
  | "timeout"
  /** The other side closed or reset the connection without ending it cleanly. */
  | "reset"
  /** The other side closed the connection while this side was sending. */
  | "broken-pipe"
  /** No client certificate was presented, or the server demanded one. */
  | "no-certificate"
  /** The other side refused this party's certificate. */
  | "certificate-refused"
  /** The other side's certificate is not from the CA this party trusts. */
  | "untrusted-certificate"
  /** The other side's certificate is expired or not yet valid. */
  | "expired-certificate"
  /** The other side's certificate does not name the host connected to. */
  | "name-mismatch"
  /** The certificate passed TLS but the party's certificate policy refused it. */
  | "not-authorized"
  /** This party's certificate, key or CA file cannot be used. */
  | "credentials"
  /** The other side does not offer TLS 1.2 or 1.3. */
  | "tls-version"
  /** The other side does not speak TLS at all (wrong port?). */
  | "not-tls"
  /** Any other TLS failure. */
  | "tls"
  /** The other side sent more than this side may hold unread. */
  | "overrun"
  /** The connection ended inside a frame. */
  | "truncated"
  /** Too many connections are waiting; this one was turned away. */
  | "busy"
  /** Some other system error. */
  | "network"
  /** sumshare used a connection it had already closed: a bug. */
  | "bug";

/** Options for {@linkcode TransportError}. */
export interface TransportErrorOptions extends ErrorOptions {
  reason: TransportFailure;
}

/** A connection failed; the message says what happened and what to check. */
export class TransportError extends Error {
  override name = "TransportError";
  /** What went wrong, for a program to branch on. */
  readonly reason: TransportFailure;

  constructor(message: string, options: TransportErrorOptions) {
    super(message, options);
    this.reason = options.reason;
  }
}

/** Where a failure happened, to word the sentence. */
export interface FailureContext {
  /**
   * What this side was doing, to follow "Cannot ": "connect to the hospital
   * at 127.0.0.1:4000", "read from alice", "listen on 0.0.0.0:4000".
   */
  action: string;
  /** The other side, as a noun phrase: "the hospital", "alice", "a client at 10.0.0.7:51234". */
  peer: string;
}

/** The facts of an error that the rules look at. */
interface Facts {
  name: string;
  message: string;
  code: string;
}

function factsOf(error: unknown): Facts {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, code: typeof code === "string" ? code : "" };
  }
  return { name: "", message: String(error), code: "" };
}

/** Errors that only a mistake in the program raises. */
const BUG_TYPES = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

/**
 * The TLS alert in an error, from rustls' `received fatal alert:
 * BadCertificate` or node's `ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE`, as
 * rustls spells it.
 */
function alertOf({ message, code }: Facts): string | undefined {
  const rustls = /received fatal alert: (\w+)/.exec(message);
  if (rustls) return rustls[1]!;
  const node = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$/.exec(code);
  return node
    ? node[1]!.toLowerCase().replace(/(?:^|_)(\w)/g, (_, c: string) => c.toUpperCase())
    : undefined;
}

const alertIs = (...names: string[]) => (f: Facts) =>
  names.includes(alertOf(f)?.toLowerCase() ?? "");

/** Alerts that mean "I do not accept your certificate". */
const REFUSAL_ALERTS = [
  "badcertificate",
  "unsupportedcertificate",
  "certificaterevoked",
  "certificateexpired",
  "certificateunknown",
  "unknownca",
  "accessdenied",
];

/** A rule: when it applies, and the sentence after "Cannot ACTION: ". */
interface Rule {
  reason: TransportFailure;
  test(facts: Facts): boolean;
  explain(context: FailureContext, facts: Facts): string;
}

const has = (pattern: RegExp) => (f: Facts) => pattern.test(f.message);
const codeIs = (...codes: string[]) => (f: Facts) => codes.includes(f.code);
const nameIs = (...names: string[]) => (f: Facts) => names.includes(f.name);
const any = (...tests: ((f: Facts) => boolean)[]) => (f: Facts) => tests.some((t) => t(f));
const all = (...tests: ((f: Facts) => boolean)[]) => (f: Facts) => tests.every((t) => t(f));

const RULES: readonly Rule[] = [
  {
    reason: "timeout",
    test: any(nameIs("TimeoutError", "TimedOut"), codeIs("ETIMEDOUT", "ERR_TLS_HANDSHAKE_TIMEOUT")),
    explain: ({ peer }, f) =>
      `${
        f.name === "TimeoutError" && f.message !== "" ? lowerFirst(f.message) : "timed out"
      } (check that ${peer} is running and reachable, and not overloaded)`,
  },
  {
    reason: "refused",
    test: any(nameIs("ConnectionRefused"), codeIs("ECONNREFUSED")),
    explain: ({ peer }) =>
      `connection refused (check the address and port, and that ${peer} is running)`,
  },
  {
    reason: "unknown-host",
    test: any(codeIs("EAI_AGAIN"), has(/Temporary failure in name resolution/i)),
    explain: () => "cannot resolve the host name now (check DNS, or give an IP address)",
  },
  {
    reason: "unknown-host",
    test: any(
      codeIs("ENOTFOUND", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"),
      has(/failed to lookup address|Name or service not known|nodename nor servname|No such host/i),
    ),
    explain: () => "unknown host name (check the host part of the address)",
  },
  {
    reason: "unreachable",
    test: any(
      codeIs("EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EHOSTDOWN"),
      has(/No route to host|Network is unreachable|Network is down/i),
    ),
    explain: () => "no route to the host (check the address and this machine's network)",
  },
  {
    reason: "address-in-use",
    test: any(nameIs("AddrInUse"), codeIs("EADDRINUSE")),
    explain: () =>
      "the address is already in use (another process listens there: stop it or choose another port)",
  },
  {
    reason: "address-unavailable",
    test: any(nameIs("AddrNotAvailable"), codeIs("EADDRNOTAVAIL")),
    explain: () => "the address is not one of this machine's (check the host to listen on)",
  },
  {
    // Some sandboxes report an address that is not this machine's as EINVAL on listen.
    reason: "address-unavailable",
    test: all(codeIs("EINVAL"), has(/\blisten\b/)),
    explain: () => "the address is not one of this machine's (check the host to listen on)",
  },
  {
    reason: "address-unavailable",
    test: any(codeIs("EACCES", "EPERM")),
    explain: () => "permission denied (ports below 1024 need privileges: choose a higher port)",
  },
  {
    reason: "permission",
    test: nameIs("NotCapable"),
    explain: () => "this program may not use that address (run it with --allow-net for it)",
  },
  {
    reason: "credentials",
    test: any(
      has(/No certificates found|No keys found|keys may not be consistent|unsupported protocol/i),
      codeIs("ERR_SSL_UNSUPPORTED_PROTOCOL"),
    ),
    // Deno's node:tls says "unsupported protocol" when it cannot build its
    // TLS configuration from this party's certificate and key.
    explain: () =>
      "this party's TLS certificate or key cannot be used (check that they are PEM files of the same party)",
  },
  {
    reason: "no-certificate",
    test: any(
      has(/CertificateRequired|peer sent no certificates/i),
      codeIs(
        "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
      ),
    ),
    explain: ({ peer }, f) =>
      /peer sent no certificates/i.test(f.message) || f.code.startsWith("ERR_SSL_PEER")
        ? `${peer} presented no certificate (only consortium members may connect, each with its own certificate)`
        : `${peer} requires a client certificate and none was presented (give this party's certificate and key)`,
  },
  {
    reason: "expired-certificate",
    test: has(/invalid peer certificate: .*(expired|not valid yet|NotValidYet)/i),
    explain: ({ peer }) =>
      `the certificate of ${peer} is expired or not yet valid (check both machines' clocks; renew it with \`sumshare certs\`)`,
  },
  {
    reason: "name-mismatch",
    test: has(/invalid peer certificate: .*(not valid for name|NotValidForName)/i),
    explain: ({ peer }, f) => {
      const host = /not valid for name "([^"]*)"/.exec(f.message)?.[1];
      const named = host === undefined ? "the host connected to" : `host ${host}`;
      return `the certificate of ${peer} does not name ${named} (connect with a host name its certificate names, or reissue it with that host)`;
    },
  },
  {
    reason: "untrusted-certificate",
    test: has(/invalid peer certificate/i),
    explain: ({ peer }) =>
      `the certificate of ${peer} is not issued by the consortium CA this party trusts (check that both use the same consortium's ca.crt)`,
  },
  {
    reason: "certificate-refused",
    test: alertIs("decrypterror"),
    explain: ({ peer }) =>
      `${peer} could not verify this party's certificate: it trusts another CA (check that both use the same consortium's ca.crt)`,
  },
  {
    reason: "certificate-refused",
    test: alertIs(...REFUSAL_ALERTS),
    explain: ({ peer }) =>
      `${peer} refused this party's certificate (check that it is issued by the consortium CA, valid today, and for the right name and host)`,
  },
  {
    reason: "tls-version",
    test: any(
      alertIs("protocolversion"),
      has(
        /peer is incompatible|unsupported protocol|ProtocolVersion|Tls12NotOffered|no protocols available/i,
      ),
      codeIs("ERR_SSL_UNSUPPORTED_PROTOCOL", "ERR_SSL_NO_PROTOCOLS_AVAILABLE"),
    ),
    explain: ({ peer }) =>
      `${peer} does not offer TLS 1.2 or 1.3 (sumshare speaks only those: check what runs there)`,
  },
  {
    reason: "not-tls",
    test: any(
      has(/corrupt message|InvalidContentType|wrong version number|http request/i),
      codeIs("ERR_SSL_WRONG_VERSION_NUMBER", "ERR_SSL_HTTP_REQUEST"),
    ),
    explain: ({ peer }) =>
      `${peer} does not speak TLS (check the port: it must be the sumshare hospital's)`,
  },
  {
    reason: "tls",
    test: (f) => alertOf(f) !== undefined,
    explain: ({ peer }, f) =>
      `${peer} ended the TLS session with alert ${
        alertOf(f)
      } (check that both run sumshare with certificates from the same consortium)`,
  },
  {
    reason: "reset",
    test: any(
      nameIs("UnexpectedEof", "ConnectionReset", "ConnectionAborted"),
      codeIs("ECONNRESET", "ECONNABORTED"),
      has(/close_notify|socket hang up|Connection reset|unexpected end of file/i),
    ),
    explain: ({ peer }) =>
      `${peer} closed the connection abruptly (it stopped, or refused a certificate: check its log)`,
  },
  {
    reason: "broken-pipe",
    test: any(
      nameIs("BrokenPipe"),
      codeIs("EPIPE", "ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END"),
      has(/broken pipe|write after end/i),
    ),
    explain: ({ peer }) =>
      `${peer} closed the connection while this party was sending (it stopped, or refused this party: check its log)`,
  },
  {
    reason: "bug",
    test: any(nameIs("BadResource", "Interrupted"), has(/Bad resource ID|operation canceled/i)),
    explain: () =>
      "the connection was used after this party closed it (this is a bug in sumshare: please report it)",
  },
];

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** The system's text, kept readable: no URL, no "(os error N)", one line. */
function plainText(message: string): string {
  return message
    .replace(/:?\s*https?:\/\/\S+/g, "")
    .replace(/\s*\(os error \d+\)/g, "")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 200);
}

/**
 * `error` as a {@linkcode TransportError} saying "Cannot ACTION: what
 * happened (what to check)". A `TransportError` is returned as it is; a
 * `TypeError`, `RangeError` and the like (a bug, not a network failure) is
 * returned unchanged so it is reported with its stack.
 */
export function transportError(error: unknown, context: FailureContext): Error {
  if (error instanceof TransportError) return error;
  if (BUG_TYPES.some((type) => error instanceof type)) return error as Error;
  const facts = factsOf(error);
  const rule = RULES.find((r) => r.test(facts));
  const detail = rule
    ? rule.explain(context, facts)
    : `${
      lowerFirst(plainText(facts.message) || "unknown failure")
    } (check the network, and that ${context.peer} is running)`;
  return new TransportError(`Cannot ${context.action}: ${detail}`, {
    reason: rule?.reason ?? "network",
    cause: error,
  });
}
