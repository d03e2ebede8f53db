import assert from "node:assert/strict";
import { z } from "zod";
import { bool, id, int, issueToError, nonEmpty, oneOf, paramSchema, parserOf, refused, text } from "./fields.ts";

Deno.test("field rules show their constraints on the input side of their zod schema", () => {
  const schema = paramSchema({ day: int(1, 31), name: text(5), gender: oneOf(["M", "F"]), on: bool, no: refused("x") });
  const json = z.toJSONSchema(schema, { io: "input" }) as {
    properties: Record<string, Record<string, unknown>>;
    additionalProperties: boolean;
  };
  assert.equal(json.additionalProperties, false);
  assert.equal(json.properties.day!.type, "integer");
  assert.equal(json.properties.day!.minimum, 1);
  assert.equal(json.properties.day!.maximum, 31);
  assert.equal(json.properties.name!.maxLength, 5);
  assert.deepEqual(json.properties.gender!.enum, ["M", "F"]);
  assert.equal(json.properties.on!.type, "boolean");
  assert.deepEqual(json.properties.no!.not, {});
});

Deno.test("paramSchema() names each parameter in its messages, also after .describe()", () => {
  const schema = paramSchema({ birth_day: int(1, 31).describe("Day of birth."), card_id: nonEmpty(id) });
  assert.deepEqual(schema.parse({ birth_day: " 24 ", card_id: "7" }), { birth_day: 24, card_id: 7 });
  const bad = schema.safeParse({ birth_day: "32" });
  assert.equal(bad.success, false);
  const error = issueToError(bad.error!);
  assert.equal(error.field, "birth_day");
  assert.equal(error.message, 'Invalid birth_day "32": must be a whole number from 1 to 31');
  const empty = schema.safeParse({ card_id: " " });
  assert.equal(issueToError(empty.error!).message, 'Invalid card_id " ": must not be empty');
  const unknown = schema.safeParse({ fnmae: "x" });
  assert.equal(issueToError(unknown.error!).message, 'Unknown parameter "fnmae"');
});

Deno.test("parserOf() gives the parser behind a rule, for one value at a time", () => {
  assert.equal(parserOf(oneOf(["NEW", "ACTIVE"]))("active", "status"), "ACTIVE");
  assert.throws(() => parserOf(text(3))("abcd", "fname"), { message: 'Invalid fname "abcd": at most 3 characters' });
  // A plain zod schema of text works too; its failure still names the field.
  assert.throws(() => parserOf(z.string().max(2))("abc", "code"), { name: "ValidationError", field: "code" });
});
