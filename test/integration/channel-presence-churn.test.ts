/**
 * Each join is announced twice to the channel's presence listeners (joined, then left), so it
 * costs its subject two of its publishes (PUBLISH_RATE_PER_SECOND): a loop of joins and leaves by
 * a member with only `<prefix>.join` had sent 600 presence messages in 1.2 s to a listener while
 * the same subject's broadcasts were held to 5 a second.
 */
import { describe, expect, it } from 'vitest';
import { testRedisUrl, uniquePrefix } from '../helpers/index.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

describe('channel joins and the subject’s publish budget', () => {
  it('refuses joins past PUBLISH_RATE_PER_SECOND with RATE_LIMITED, two publishes a join', { timeout: 60_000 }, async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET, REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: uniquePrefix(), PUBLISH_RATE_PER_SECOND: '5' });
    const token = await signHs256({ sub: 'churner', tenant: 't', permissions: ['chat.join'] });
    const socket = await openAcknowledgedSocket(server.wsUrl, token);
    // 40 joins want 80 publishes; the budget holds 5 and refills 5 a second.
    for (let i = 0; i < 40; i += 1) socket.send({ id: `j${i}`, type: 'subscribe', payload: { query: 'subscription { channel(name: "chat.lobby") { event } }' } });
    const refused = await socket.waitForMessage((message) => message.type === 'next' && (message.payload as { errors?: unknown }).errors !== undefined);
    expect(refused.payload).toMatchObject({ errors: [{ extensions: { code: 'RATE_LIMITED' } }] });
  });
});
