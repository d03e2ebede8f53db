import { Hono } from "hono";
import denoJson from "../deno.json" with { type: "json" };
import { healthReply } from "../domain/replies.ts";
import { storeRoundTrip } from "../usecases/admin.ts";
import { describeRoute } from "./route_doc.ts";
import type { AppEnv, Deps } from "./context.ts";
import { render } from "./reply.ts";

/** The service version, from the "version" field of deno.json (the one place it is written). */
export const VERSION: string = denoJson.version;

/** How long `/health` waits for the store before calling it down. */
const STORE_TIMEOUT_MS = 2000;

/**
 * `GET /health`, without a key: 200 with the version and the store's round trip in ms when a real read
 * answers, 503 with the error envelope when it fails or takes longer than two seconds.
 */
export function healthRoutes(deps: Deps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const doc = describeRoute({
    summary: "Liveness: the version and the store's round trip, without a key",
    public: true,
    reply: healthReply,
    errors: [503],
    tags: ["service"],
  });
  app.get("/", doc, async (c) => {
    const format = c.get("format") ?? "json";
    try {
      const ms = await storeRoundTrip(deps.store, { timeoutMs: STORE_TIMEOUT_MS });
      return render(format, { status: "ok", version: VERSION, store_ms: Math.round(ms * 100) / 100 });
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      return render(format, { success: 0, info: `Store unavailable: ${why}` }, 503);
    }
  });
  return app;
}
