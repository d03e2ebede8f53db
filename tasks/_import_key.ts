/**
 * What names one import of one file, for `deno task import` and its benchmark alike: the checkpoint key (the type
 * and the SHA-256 of the file's content) and the reader's options that decide the rows (kept with a finished run,
 * so a repeat with other options reads the file again).
 */
import { createHash } from "node:crypto";

/** The checkpoint key of a file: its type and the SHA-256 of its content, read as a stream. */
export async function importKeyOf(path: string, type: string): Promise<string> {
  const hash = createHash("sha256");
  const f = await Deno.open(path);
  for await (const chunk of f.readable) hash.update(chunk); // the stream closes the file at its end
  return `${type}:${hash.digest("hex")}`;
}

/** The reader's options that decide the rows, as one string. */
export function readerFingerprint(options: {
  format: string;
  encoding: string;
  delimiter?: string;
  preset?: string;
  map?: Record<string, string>;
  ignoreUnknown: boolean;
}): string {
  return JSON.stringify({
    format: options.format,
    encoding: options.encoding,
    delimiter: options.delimiter ?? null,
    preset: options.preset ?? null,
    map: options.map ?? null,
    ignoreUnknown: options.ignoreUnknown,
  });
}
