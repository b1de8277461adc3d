import type { Redis } from 'ioredis';

/**
 * The one way the pipeline runs Lua in Redis: each script is registered once per connection as
 * an ioredis command, which sends EVALSHA and falls back to EVAL when Redis does not know the
 * script (first use, or a restarted Redis). Every atomic decision — the event log's appends, the
 * document cache, leader election — goes through it.
 */

/** A bound script: the first `numberOfKeys` arguments are KEYS, the rest ARGV. */
export type ScriptCommand = (...args: never[]) => Promise<unknown>;

/** The Lua registered under each name, per connection: one name must not mean two scripts. */
const registered = new WeakMap<Redis, Map<string, string>>();

/**
 * Registers `lua` as the command `name` on `redis` (once per connection) and returns it bound to
 * that connection, typed as `Command`, e.g.
 * `defineScript<(key: string, ttlMs: number) => Promise<number>>(redis, 'myTouch', 1, TOUCH)`.
 * @throws Error when `name` is already registered on this connection with other Lua.
 */
export function defineScript<Command extends ScriptCommand>(redis: Redis, name: string, numberOfKeys: number, lua: string): Command {
  let scripts = registered.get(redis);
  if (!scripts) registered.set(redis, (scripts = new Map<string, string>()));
  const known = scripts.get(name);
  if (known === undefined) {
    if (name in redis) throw new Error(`Redis command name "${name}" is taken`);
    redis.defineCommand(name, { numberOfKeys, lua });
    scripts.set(name, lua);
  } else if (known !== lua) {
    throw new Error(`Redis script "${name}" is already defined with other Lua on this connection`);
  }
  const command = (redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[name]!;
  return ((...args: Parameters<Command>) => command.apply(redis, args)) as Command;
}
