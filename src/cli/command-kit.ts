// Shared plumbing of the resource commands: one lazily authenticated client
// per invocation, the error line and exit code, --json, --wait, and
// name → ID resolution.
import { InvalidArgumentError, type Command } from 'commander';
import { CliError, VolumeClient, credentialsFromEnv, type ApiRequest, type Resource } from './client.js';
import { renderJson } from './format.js';
import { DEFAULT_WAIT_TIMEOUT_S, getOrNull, waitFor, type WaitGoal } from './wait.js';
import type { Collection } from './requests.js';
import * as rq from './requests.js';

export interface Ctx {
  /** Authenticates on first use, so `--help` and argument errors need no server. */
  client(): Promise<VolumeClient>;
  /** Writes the JSON, or the table built lazily, to stdout. */
  print(json: boolean, value: unknown, table: () => string): void;
  /** Polls `req` (a GET) until the item is final; `label` names it in messages. */
  wait(label: string, req: ApiRequest, key: string, goal: WaitGoal, opts: WaitFlags): Promise<Resource | null>;
  /** An ID as given, or the ID of the one item of `collection` with that name. */
  resolve(collection: Collection, key: string, idOrName: string): Promise<string>;
}

export interface WaitFlags {
  wait?: boolean;
  waitTimeout?: number;
}

/** `--json` on any command. */
export interface Json {
  json?: boolean;
}

/** Positional arguments as commander hands them: a string, or a string[] for variadic ones. */
export type Args = readonly (string | string[])[];
export const one = (args: Args): string => String(args[0]);
export const many = (args: Args): string[] => (Array.isArray(args[0]) ? args[0] : [String(args[0])]);

/** The ID of the one item named (or with the ID) `idOrName`; a clear error for none or several. */
export function pickByName(items: readonly Resource[], kind: string, idOrName: string): string {
  const hits = items.filter((r) => r['name'] === idOrName || r['id'] === idOrName);
  if (hits.length === 0) throw new CliError(`no ${kind} with name or ID ${JSON.stringify(idOrName)}`);
  if (hits.length > 1) throw new CliError(`more than one ${kind} is named ${JSON.stringify(idOrName)}; use the ID`);
  return String(hits[0]!['id']);
}

function makeCtx(): Ctx {
  let pending: Promise<VolumeClient> | null = null;
  const client = () => (pending ??= VolumeClient.connect(credentialsFromEnv()));
  return {
    client,
    print(json, value, table) {
      process.stdout.write(json ? renderJson(value) : table());
    },
    async wait(label, req, key, goal, flags) {
      const c = await client();
      return waitFor(label, getOrNull(() => c.call(req), key), goal, {
        timeoutMs: (flags.waitTimeout ?? DEFAULT_WAIT_TIMEOUT_S) * 1000,
        // A progress line is only useful to a person; logs and pipes get none.
        progress: process.stderr.isTTY ? process.stderr : null,
      });
    },
    async resolve(collection, key, idOrName) {
      if (rq.UUID.test(idOrName)) return idOrName;
      const c = await client();
      // Cinder filters volumes by name server-side; other lists are small.
      const req = rq.list(collection, collection === 'volumes' ? { query: { name: idOrName } } : {});
      return pickByName(await c.listAll(req, rq.listKey(collection)), key.replace(/_/g, ' '), idOrName);
    },
  };
}

/**
 * Sets the action of `cmd`. Positional arguments come as commander hands them
 * (a string, or a string[] for variadic ones); every failure becomes
 * `error: <message>` on stderr with exit status 1.
 */
export function run<O extends object>(cmd: Command, fn: (ctx: Ctx, opts: O, args: readonly (string | string[])[]) => Promise<void>): Command {
  return cmd.action(async (...raw: unknown[]) => {
    const self = raw[raw.length - 1] as Command;
    try {
      await fn(makeCtx(), self.opts() as O, self.processedArgs as (string | string[])[]);
    } catch (err) {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      // exitCode rather than exit(): stdout already written must still be flushed.
      process.exitCode = 1;
    }
  });
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Commander option parsers must throw commander's error to get its usage message. */
export function intArg(parse: (text: string) => number): (text: string) => number {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

export function jsonOption(cmd: Command): Command {
  return cmd.option('--json', 'print the raw JSON of the answer instead of a table');
}

export function waitOptions(cmd: Command, what: string): Command {
  return cmd
    .option('--wait', `wait until ${what}`)
    .option('--wait-timeout <seconds>', `give up waiting after this long (default ${DEFAULT_WAIT_TIMEOUT_S})`, intArg(positiveInt));
}

export function positiveInt(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) throw new CliError(`expected a whole number >= 1, got ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * `delete A B C`: every ID is tried even when one fails, as openstackclient
 * does, and the failures are reported together.
 */
export async function forEachId(ids: readonly string[], kind: string, fn: (id: string) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (const id of ids) {
    try {
      await fn(id);
    } catch (err) {
      // One ID: its own error line, exactly as any other command reports it.
      if (ids.length === 1) throw err;
      failures.push(`${kind} ${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failures.length > 0) throw new CliError(`${failures.length} of ${ids.length} failed:\n  ${failures.join('\n  ')}`);
}

/** The existing command named `name` (e.g. `volume`, which is also a role), or a new one. */
export function commandNamed(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

/**
 * `<resource> delete ID...`: resolves and deletes each, then (--wait) waits
 * for the deleted ones to 404 before reporting any failure.
 */
export async function deleteAll(
  ctx: Ctx,
  ids: readonly string[],
  spec: { collection: Collection; key: string; send: (c: VolumeClient, id: string) => Promise<unknown>; wait?: WaitFlags },
): Promise<void> {
  const c = await ctx.client();
  const kind = spec.key.replace(/_/g, ' ');
  const done: string[] = [];
  let failure: unknown = null;
  try {
    await forEachId(ids, kind, async (given) => {
      const id = await ctx.resolve(spec.collection, spec.key, given);
      await spec.send(c, id);
      done.push(id);
    });
  } catch (err) {
    failure = err;
  }
  if (spec.wait?.wait) {
    for (const id of done) await ctx.wait(`${kind} ${id}`, rq.item('GET', spec.collection, id), spec.key, 'gone', spec.wait);
  }
  if (failure !== null) throw failure;
}
