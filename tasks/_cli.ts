// deno-lint-ignore-file no-console
/** What the command-line tasks share: strict option parsing with `--help`, and the usage error (exit 2). */
import { parseArgs } from "node:util";

/** A task's options: each a string or a boolean. */
type Options = Record<string, { type: "string" | "boolean" }>;

/** The values of parsed options: absent when not given. */
type Values<O extends Options> = { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string };

/** Prints the message and the usage on stderr and exits 2. */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n${usage}`);
  Deno.exit(2);
}

/**
 * Parses the task's options strictly (no positionals; an unknown option or a missing value is a usage error) and
 * answers `--help` with the usage (exit 0).
 */
export function parseOptions<O extends Options>(options: O, usage: string): Values<O> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: Deno.args,
      options: { ...options, help: { type: "boolean" as const } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    usageError(error instanceof Error ? error.message : String(error), usage);
  }
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  return values as Values<O>;
}
