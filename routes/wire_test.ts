import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeComponent } from "./wire.ts";

/** The decoding rule, spelled out: each run of escapes is UTF-8 on its own (fatal), "+" a space, a lone "%" kept. */
function reference(text: string): string | null {
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let ok = true;
  const out = text.replaceAll("+", " ").replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(run.slice(3 * i + 1, 3 * i + 3), 16);
    try {
      return utf8.decode(bytes);
    } catch {
      ok = false;
      return "";
    }
  });
  return ok ? out : null;
}

const piece = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, "0")}`),
  fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`),
  fc.constantFrom("%", "%4", "%zz", "+", "a", "=", "Ж", "😀", " ", "%EF%BB%BF", "\uFEFF"),
  fc.string({ maxLength: 3 }).filter((s) => s.isWellFormed()),
);

Deno.test("decodeComponent decodes every mix of escapes, text and stray % as the rule says", () => {
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
      const text = pieces.join("");
      assert.equal(decodeComponent(text), reference(text));
    }),
    { numRuns: 20_000 },
  );
  // Escapes of whole UTF-8 characters, and the ones UTF-8 refuses: overlong forms, surrogates, cut characters.
  assert.equal(decodeComponent("%D0%96%F0%9F%98%80+%2B"), "Ж😀 +");
  // U+FEFF is text like any other, with or without a stray % beside it.
  assert.equal(decodeComponent("Sale%EF%BB%BF50"), "Sale\uFEFF50");
  assert.equal(decodeComponent("Sale%EF%BB%BF50%"), "Sale\uFEFF50%");
  for (const bad of ["%C0%AF", "%ED%A0%80", "%D0", "%FF", "%E2%82"]) assert.equal(decodeComponent(bad), null, bad);
});
