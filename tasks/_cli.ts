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

/** An option of a task with subcommands: its type, and optionally a one-letter alias and a default. */
type CommandOption = { type: "string" | "boolean"; short?: string; default?: string | boolean };

/** The values of a command's options: those with a default are always there. */
type CommandValues<O extends Record<string, CommandOption>> = {
  [K in keyof O]:
    | (O[K]["type"] extends "boolean" ? boolean : string)
    | (O[K] extends { default: unknown } ? never
      : undefined);
};

/**
 * Parses a task with subcommands (`deno task apikey create --company acme`): the positionals and the options, an
 * unknown option or a missing value answered by the message and the usage (exit 2), `--help`/`-h` by the usage (exit 0).
 */
export function parseCommand<O extends Record<string, CommandOption>>(
  options: O,
  usage: string,
  args: string[] = Deno.args,
): { positionals: string[]; values: CommandValues<O> } {
  let parsed: { positionals: string[]; values: Record<string, unknown> };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { ...options, help: { type: "boolean" as const, short: "h" } },
    });
  } catch (error) {
    usageError(error instanceof Error ? error.message : String(error), `\n${usage}`);
  }
  if (parsed.values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  return { positionals: parsed.positionals, values: parsed.values as CommandValues<O> };
}
