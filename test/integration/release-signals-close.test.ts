/**
 * Release signals share the process's SUBSCRIBE connection with the live bus, which outlives them
 * until the clients close it: closing the signals leaves what they hold — their SUBSCRIBEs, their
 * listeners on the connection — and the connection goes on serving the others.
 */
import { expect, it, onTestFinished } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createReleaseSignals } from '../../src/pipeline/coordination/release-signals.ts';
import { closeRedis, createRedisClient, redisConnected } from '../../src/redis-clients.ts';
import { testRedisUrl, uniquePrefix } from '../helpers/services.ts';
import { waitFor } from '../helpers/wait-for.ts';

const logger = createLogger({ level: 'silent' });

it('close() unsubscribes its channels, takes its listeners off the shared connection and refuses new listens; a second close does nothing', async () => {
  const subscriber = createRedisClient(testRedisUrl(), 'signals-subscriber', logger, 'subscriber');
  onTestFinished(() => closeRedis(subscriber));
  const command = createRedisClient(testRedisUrl(), 'signals-command', logger);
  onTestFinished(() => closeRedis(command));
  await Promise.all([redisConnected(subscriber, 5000, logger), redisConnected(command, 5000, logger)]);
  const counts = () => ({ message: subscriber.listenerCount('message'), ready: subscriber.listenerCount('ready'), error: subscriber.listenerCount('error') });
  const before = counts();

  const signals = createReleaseSignals(subscriber, logger);
  const channel = `${uniquePrefix()}leader:released`;
  let heard = 0;
  await signals.listen(channel, () => (heard += 1));
  const subscribers = async () => ((await command.pubsub('NUMSUB', channel)) as [string, number])[1];
  expect(await subscribers()).toBe(1);
  await command.publish(channel, 'released');
  await waitFor(() => heard >= 2, { message: 'the signal arrived (after the call on the confirmed SUBSCRIBE)' });

  await signals.close();
  await signals.close();
  expect(counts()).toEqual(before);
  expect(await subscribers()).toBe(0);
  await expect(signals.listen(channel, () => undefined)).rejects.toThrow(/after close/);
  // The connection is not theirs: still open, still subscribing for others.
  expect(subscriber.status).toBe('ready');
  await subscriber.subscribe(`${channel}:other`);
});
