// deno-lint-ignore-file no-console
/**
 * `deno task admin create|list|passwd|delete`: manages back-office users in the store at KV_PATH.
 *
 *   deno task admin create --company ID --login NAME --role owner|manager|viewer [--stdin]
 *   deno task admin list --company ID
 *   deno task admin passwd --company ID --login NAME [--stdin]
 *   deno task admin delete --company ID --login NAME
 */
import { parseCommand, usageError } from "./_cli.ts";
import { loadConfig } from "../config.ts";
import { checkRole } from "../domain/admin_user.ts";
import { checkCompanyId } from "../domain/api_key.ts";
import { AppError } from "../domain/errors.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import { createAdminUser, listAdminUsers, removeAdminUser, setAdminPassword } from "../usecases/admin_users.ts";

const USAGE = `Usage:
  deno task admin create --company ID --login NAME --role owner|manager|viewer [--stdin]
  deno task admin list --company ID
  deno task admin passwd --company ID --login NAME [--stdin]
  deno task admin delete --company ID --login NAME
Without --stdin a one-time password is made and printed once; with it, the password is read from standard input.`;

function fail(message: string): never {
  usageError(message, `\n${USAGE}`);
}

// An unknown option, or one missing its value, is answered by the usage (exit 2), not a stack trace.
const { positionals, values } = parseCommand({
  company: { type: "string" },
  login: { type: "string" },
  role: { type: "string" },
  stdin: { type: "boolean" },
}, USAGE);

async function readStdin(): Promise<string> {
  const text = await new Response(Deno.stdin.readable).text();
  return text.replace(/\r?\n$/, "");
}

const [command, ...rest] = positionals;
if (rest.length > 0) fail(`Unexpected argument "${rest[0]}"`);
if (!values.company) fail("--company is required");
let companyId: string;
try {
  companyId = checkCompanyId(values.company);
} catch (error) {
  fail((error as Error).message);
}
const needLogin = (): string => values.login ?? fail("--login is required");
const config = loadConfig((name) => Deno.env.get(name));
const kv = await openKv(config.kvPath);
const store = createStore(kv);
const actor = { companyId, name: "task:admin", userId: 0 };
try {
  switch (command) {
    case "create": {
      const login = needLogin();
      if (!values.role) fail("--role is required");
      const role = checkRole(values.role);
      const given = values.stdin ? await readStdin() : undefined;
      const { user, password } = await createAdminUser(store, actor, { login, role, password: given });
      console.log(`Created ${user.role} "${user.login}" in company "${companyId}"`);
      if (given === undefined) console.log(`One-time password (shown once): ${password}`);
      break;
    }
    case "list":
      for (const user of await listAdminUsers(store, actor)) {
        console.log(`${user.login}\t${user.role}\t${new Date(user.created_date).toISOString()}`);
      }
      break;
    case "passwd": {
      const login = needLogin();
      const given = values.stdin ? await readStdin() : undefined;
      const password = await setAdminPassword(store, actor, { login, password: given });
      console.log(`Password of "${login}" changed`);
      if (given === undefined) console.log(`One-time password (shown once): ${password}`);
      break;
    }
    case "delete": {
      const user = await removeAdminUser(store, actor, needLogin());
      console.log(`Deleted "${user.login}"`);
      break;
    }
    default:
      fail(command ? `Unknown command "${command}"` : "Missing command");
  }
} catch (error) {
  if (!(error instanceof AppError)) throw error;
  console.error(error.message);
  kv.close();
  Deno.exit(1);
}
kv.close();
