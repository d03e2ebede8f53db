import { isValidCountryCode } from "./domain/phone.ts";
import { isValidTimeZone } from "./domain/dates.ts";

/** Service settings, read once from the environment. */
export interface Config {
  /** Port to listen on (PORT, default 8000). */
  port: number;
  /** Address to listen on (HOST, default 0.0.0.0). */
  host: string;
  /** KV file path, ":memory:", or undefined for the platform's KV on Deno Deploy (KV_PATH). */
  kvPath: string | undefined;
  /** Country code for national phone numbers (DEFAULT_COUNTRY_CODE, default 7). */
  defaultCountryCode: string;
  /** IANA time zone of dates on the wire and of "today" for ages (TIME_ZONE, default UTC). */
  timeZone: string;
  /** How long a looked-up API key is trusted before it is read again, ms (AUTH_CACHE_MS, default 5000). */
  authCacheMs: number;
  /** How long group, card type and bonus program names are reused before being read again, ms (DIRECTORY_CACHE_MS, default 5000). */
  directoryCacheMs: number;
  /** Largest accepted request body in bytes (MAX_BODY_BYTES, default 1 MiB). */
  maxBodyBytes: number;
  /** Whether to log one line per request (LOG_REQUESTS, default 1). */
  logRequests: boolean;
  /** How long audit entries are kept, days (AUDIT_RETENTION_DAYS, default 365). */
  auditRetentionDays: number;
}

/** Default settings: also what tests start from. */
export const DEFAULT_CONFIG: Config = {
  port: 8000,
  host: "0.0.0.0",
  kvPath: "./data/loyalty.kv",
  defaultCountryCode: "7",
  timeZone: "UTC",
  authCacheMs: 5000,
  directoryCacheMs: 5000,
  maxBodyBytes: 1024 * 1024,
  logRequests: true,
  auditRetentionDays: 365,
};

function intSetting(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`Invalid ${name} "${raw}": must be a whole number`);
  return n;
}

function positiveSetting(name: string, raw: string | undefined, fallback: number): number {
  const n = intSetting(name, raw, fallback);
  if (n < 1) throw new Error(`Invalid ${name} "${raw}": must be at least 1`);
  return n;
}

/** Reads the settings from environment variables, failing loudly on a bad value. */
export function loadConfig(env: (name: string) => string | undefined, onDeploy = false): Config {
  const cc = env("DEFAULT_COUNTRY_CODE") || DEFAULT_CONFIG.defaultCountryCode;
  if (!isValidCountryCode(cc)) throw new Error(`Invalid DEFAULT_COUNTRY_CODE "${cc}": must be 1 to 3 digits`);
  const tz = env("TIME_ZONE") || DEFAULT_CONFIG.timeZone;
  if (!isValidTimeZone(tz)) throw new Error(`Invalid TIME_ZONE "${tz}": not an IANA time zone`);
  const log = env("LOG_REQUESTS");
  return {
    port: intSetting("PORT", env("PORT"), DEFAULT_CONFIG.port),
    host: env("HOST") || DEFAULT_CONFIG.host,
    kvPath: env("KV_PATH") || (onDeploy ? undefined : DEFAULT_CONFIG.kvPath),
    defaultCountryCode: cc,
    timeZone: tz,
    authCacheMs: intSetting("AUTH_CACHE_MS", env("AUTH_CACHE_MS"), DEFAULT_CONFIG.authCacheMs),
    directoryCacheMs: intSetting("DIRECTORY_CACHE_MS", env("DIRECTORY_CACHE_MS"), DEFAULT_CONFIG.directoryCacheMs),
    maxBodyBytes: intSetting("MAX_BODY_BYTES", env("MAX_BODY_BYTES"), DEFAULT_CONFIG.maxBodyBytes),
    logRequests: log === undefined ? true : !["0", "false", "no"].includes(log.toLowerCase()),
    auditRetentionDays: positiveSetting("AUDIT_RETENTION_DAYS", env("AUDIT_RETENTION_DAYS"), 365),
  };
}
