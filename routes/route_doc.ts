/**
 * What each route tells the OpenAPI document about itself. A route declares it once, where it is registered: in
 * its `input({...})` (parameters, summary, reply) or, for a route without parameters, with `describeRoute({...})`.
 * Method and path come from the Hono registration itself, so routes/openapi.ts finds every described route by
 * walking `app.routes`.
 */
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { FieldRule } from "../domain/fields.ts";

/** What a route says about itself besides its parameters. */
export interface RouteDoc {
  /** One line: what the endpoint does. */
  summary?: string;
  /** More detail, Markdown. */
  description?: string;
  /** The shape of a successful reply (written as JSON, or as XML with the same tree). */
  reply?: z.ZodType;
  /** Content types of a successful reply; JSON and XML when absent. */
  media?: string[];
  /** Error statuses beyond the usual ones (every API route: 400, 401, 404, 405, 413, 429, 500; writes: 403, 409). */
  errors?: number[];
  /** Parameters the endpoint cannot do without (the rules themselves treat every parameter as optional). */
  required?: string[];
  /** Whether the route answers without an API key. */
  public?: boolean;
  /** Groups in the reference UI; the path's resource when absent. */
  tags?: string[];
  /**
   * A body that is not parameters (the bulk import's NDJSON rows): documented as the requestBody, and the query
   * parameters then are plain query parameters (not "get only").
   */
  body?: { description: string; media: string[]; schema: Record<string, unknown> };
  /** Not an endpoint of its own (e.g. a 405 answer for methods a path does not take): left out of the document. */
  hidden?: boolean;
}

/** An endpoint's parameters: "get only" ones (`query`) and those that may also come in a body (`fields`). */
export interface InputSpec {
  query: Record<string, FieldRule>;
  fields: Record<string, FieldRule>;
}

/** What one handler of a route contributes to its description. */
export interface RouteDescription {
  doc: RouteDoc;
  input?: InputSpec;
}

const descriptions = new WeakMap<object, RouteDescription>();

/** Marks a handler as describing its route. */
export function registerDescription(handler: object, description: RouteDescription): void {
  descriptions.set(handler, description);
}

/** The description a handler carries, if any. */
export function descriptionOf(handler: object): RouteDescription | undefined {
  return descriptions.get(handler);
}

/** A pass-through middleware that describes a route without parameters (health, the docs themselves). */
export function describeRoute(doc: RouteDoc): MiddlewareHandler {
  const handler: MiddlewareHandler = async (_c, next) => {
    await next();
  };
  registerDescription(handler, { doc });
  return handler;
}
