import type { Redis } from 'ioredis';

/**
 * Registers a Lua script as an ioredis command (EVALSHA with EVAL fallback) and binds it. The
 * first `numberOfKeys` arguments are KEYS, the rest ARGV.
 */
export function defineScript<Command extends (...args: never[]) => Promise<unknown>>(
  redis: Redis,
  name: string,
  numberOfKeys: number,
  lua: string,
): Command {
  if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
  const command = (redis as unknown as Record<string, Command>)[name]!;
  return ((...args: Parameters<Command>) => command.apply(redis, args)) as Command;
}
