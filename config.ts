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
  /** Largest accepted body of the bulk import endpoint in bytes (IMPORT_MAX_BODY_BYTES, default 16 MiB). */
  importMaxBodyBytes: number;
  /** Whether to log one line per request (LOG_REQUESTS, default 1). */
  logRequests: boolean;
  /** How long audit entries are kept, days (AUDIT_RETENTION_DAYS, default 365). */
  auditRetentionDays: number;
  /** Request log format: the text line or one JSON object per line (LOG_FORMAT, default text). */
  logFormat: "text" | "json";
  /** Requests per second one API key may make on average; 0 for no limit (RATE_LIMIT_PER_SECOND, default 1000). */
  rateLimitPerSecond: number;
  /** Requests one API key may make at once before the average applies (RATE_LIMIT_BURST, default 5000). */
  rateLimitBurst: number;
  /** Invalid API keys one address may send within `badKeyWindowMs` before it gets 429 (BAD_KEY_LIMIT, default 20; 0 for no limit). */
  badKeyLimit: number;
  /** The window of `badKeyLimit`, ms (BAD_KEY_WINDOW_MS, default 60000). */
  badKeyWindowMs: number;
  /** Most connections open at once per process; null sizes it from the open-file limit (MAX_CONNECTIONS, default auto). */
  maxConnections: number | null;
  /** Time a new connection has to send complete request headers, ms (HEADER_TIMEOUT_MS, default 10000). */
  headerTimeoutMs: number;
  /** Time a request's body has to arrive and its reply to be ready, ms (BODY_TIMEOUT_MS, default 30000). */
  bodyTimeoutMs: number;
  /** Time a kept-alive connection may sit without a request, ms (IDLE_TIMEOUT_MS, default 30000). */
  idleTimeoutMs: number;
  /** Whether the service writes off expired points on its own, daily and shortly after start (EXPIRE_SCHEDULE, default 1). */
  expireSchedule: boolean;
  /** Local hour (0-23, in TIME_ZONE) of the daily expiry run (EXPIRE_AT_HOUR, default 3). */
  expireAtHour: number;
  /** Largest accepted webhook body in bytes (WEBHOOK_MAX_BODY_BYTES, default 512 KiB, at most 700 KiB: one atomic write). */
  webhookMaxBodyBytes: number;
  /** Attempts of a webhook delivery before it becomes a dead letter (WEBHOOK_MAX_ATTEMPTS, default 8). */
  webhookMaxAttempts: number;
  /** Delay before a failed delivery's first retry, ms; doubles each time, up to an hour (WEBHOOK_RETRY_BASE_MS, default 1000). */
  webhookRetryBaseMs: number;
  /** Days a delivery's dedupe marker is kept (WEBHOOK_DEDUPE_DAYS, default 30; at least 1, beyond Shopify's 4 hours of retries). */
  webhookDedupeDays: number;
  /** Days a webhook delivery, its body and its dead letter are kept after their last change (WEBHOOK_RETENTION_DAYS, default 30). */
  webhookRetentionDays: number;
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
  importMaxBodyBytes: 16 * 1024 * 1024,
  logRequests: true,
  auditRetentionDays: 365,
  logFormat: "text",
  rateLimitPerSecond: 1000,
  rateLimitBurst: 5000,
  badKeyLimit: 20,
  badKeyWindowMs: 60_000,
  maxConnections: null,
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  expireSchedule: true,
  expireAtHour: 3,
  webhookMaxBodyBytes: 512 * 1024,
  webhookMaxAttempts: 8,
  webhookRetryBaseMs: 1000,
  webhookDedupeDays: 30,
  webhookRetentionDays: 30,
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
  const logFormat = (env("LOG_FORMAT") || DEFAULT_CONFIG.logFormat).toLowerCase();
  if (logFormat !== "text" && logFormat !== "json") {
    throw new Error(`Invalid LOG_FORMAT "${logFormat}": must be text or json`);
  }
  const maxConnections = env("MAX_CONNECTIONS");
  const expireSchedule = env("EXPIRE_SCHEDULE");
  const expireAtHour = intSetting("EXPIRE_AT_HOUR", env("EXPIRE_AT_HOUR"), DEFAULT_CONFIG.expireAtHour);
  if (expireAtHour > 23) throw new Error(`Invalid EXPIRE_AT_HOUR "${expireAtHour}": must be an hour from 0 to 23`);
  return {
    port: intSetting("PORT", env("PORT"), DEFAULT_CONFIG.port),
    host: env("HOST") || DEFAULT_CONFIG.host,
    kvPath: env("KV_PATH") || (onDeploy ? undefined : DEFAULT_CONFIG.kvPath),
    defaultCountryCode: cc,
    timeZone: tz,
    authCacheMs: intSetting("AUTH_CACHE_MS", env("AUTH_CACHE_MS"), DEFAULT_CONFIG.authCacheMs),
    directoryCacheMs: intSetting("DIRECTORY_CACHE_MS", env("DIRECTORY_CACHE_MS"), DEFAULT_CONFIG.directoryCacheMs),
    maxBodyBytes: intSetting("MAX_BODY_BYTES", env("MAX_BODY_BYTES"), DEFAULT_CONFIG.maxBodyBytes),
    importMaxBodyBytes: positiveSetting(
      "IMPORT_MAX_BODY_BYTES",
      env("IMPORT_MAX_BODY_BYTES"),
      DEFAULT_CONFIG.importMaxBodyBytes,
    ),
    logRequests: log === undefined ? true : !["0", "false", "no"].includes(log.toLowerCase()),
    auditRetentionDays: positiveSetting("AUDIT_RETENTION_DAYS", env("AUDIT_RETENTION_DAYS"), 365),
    logFormat,
    rateLimitPerSecond: intSetting(
      "RATE_LIMIT_PER_SECOND",
      env("RATE_LIMIT_PER_SECOND"),
      DEFAULT_CONFIG.rateLimitPerSecond,
    ),
    rateLimitBurst: positiveSetting("RATE_LIMIT_BURST", env("RATE_LIMIT_BURST"), DEFAULT_CONFIG.rateLimitBurst),
    badKeyLimit: intSetting("BAD_KEY_LIMIT", env("BAD_KEY_LIMIT"), DEFAULT_CONFIG.badKeyLimit),
    badKeyWindowMs: positiveSetting("BAD_KEY_WINDOW_MS", env("BAD_KEY_WINDOW_MS"), DEFAULT_CONFIG.badKeyWindowMs),
    maxConnections: !maxConnections || maxConnections.toLowerCase() === "auto"
      ? null
      : positiveSetting("MAX_CONNECTIONS", maxConnections, 1),
    headerTimeoutMs: positiveSetting("HEADER_TIMEOUT_MS", env("HEADER_TIMEOUT_MS"), DEFAULT_CONFIG.headerTimeoutMs),
    bodyTimeoutMs: positiveSetting("BODY_TIMEOUT_MS", env("BODY_TIMEOUT_MS"), DEFAULT_CONFIG.bodyTimeoutMs),
    idleTimeoutMs: positiveSetting("IDLE_TIMEOUT_MS", env("IDLE_TIMEOUT_MS"), DEFAULT_CONFIG.idleTimeoutMs),
    expireSchedule: !expireSchedule || !["0", "false", "no"].includes(expireSchedule.toLowerCase()),
    expireAtHour,
    ...webhookSettings(env),
  };
}

function webhookSettings(env: (name: string) => string | undefined) {
  const maxBody = positiveSetting(
    "WEBHOOK_MAX_BODY_BYTES",
    env("WEBHOOK_MAX_BODY_BYTES"),
    DEFAULT_CONFIG.webhookMaxBodyBytes,
  );
  if (maxBody > 700 * 1024) throw new Error(`Invalid WEBHOOK_MAX_BODY_BYTES "${maxBody}": at most 716800`);
  return {
    webhookMaxBodyBytes: maxBody,
    webhookMaxAttempts: positiveSetting(
      "WEBHOOK_MAX_ATTEMPTS",
      env("WEBHOOK_MAX_ATTEMPTS"),
      DEFAULT_CONFIG.webhookMaxAttempts,
    ),
    webhookRetryBaseMs: intSetting("WEBHOOK_RETRY_BASE_MS", env("WEBHOOK_RETRY_BASE_MS"), 1000),
    webhookDedupeDays: positiveSetting("WEBHOOK_DEDUPE_DAYS", env("WEBHOOK_DEDUPE_DAYS"), 30),
    webhookRetentionDays: positiveSetting("WEBHOOK_RETENTION_DAYS", env("WEBHOOK_RETENTION_DAYS"), 30),
  };
}
