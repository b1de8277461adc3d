/**
 * A refused channel operation names, in `extensions.field`, the argument the client sent: `name`
 * for `channel(name:)`, `channel` and `event` for `broadcast(channel:, event:)`.
 */
import { describe, expect, it } from 'vitest';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { signHs256, TEST_SECRET } from '../helpers/tokens.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

describe('channel argument errors', () => {
  it('names the argument `name` when channel(name:) is refused for an invalid name (BAD_USER_INPUT) or without permission (FORBIDDEN)', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const client = await openAcknowledgedSocket(server.wsUrl, await signHs256({ permissions: ['lobby.join'] }));
    const join = async (id: string, name: string) => {
      client.send({ id, type: 'subscribe', payload: { query: 'subscription($n: String!) { channel(name: $n) { event } }', variables: { n: name } } });
      const answer = await client.nextMessage();
      expect(await client.nextMessage()).toEqual({ id, type: 'complete' });
      return answer;
    };

    expect(await join('invalid', 'no spaces allowed')).toMatchObject({
      id: 'invalid',
      type: 'next',
      payload: { errors: [{ message: expect.stringMatching(/^Invalid channel name/) as unknown, extensions: { code: 'BAD_USER_INPUT', field: 'name' } }] },
    });
    expect(await join('forbidden', 'vip')).toMatchObject({
      id: 'forbidden',
      type: 'next',
      payload: { errors: [{ message: 'Joining "vip" needs the permission "<prefix>.join" for a prefix of the channel', extensions: { code: 'FORBIDDEN', field: 'name' } }] },
    });
    expect(server.stats().channelMembers).toBe(0);
  });

  it('names `channel` or `event` when broadcast(channel:, event:) is refused', async () => {
    const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
    const token = await signHs256({ permissions: ['lobby.broadcast'] });
    const send = async (channel: string, event: string) =>
      (await postGraphQL(server.graphqlUrl, { query: 'mutation($c: String!, $e: String!) { broadcast(channel: $c, event: $e) }', variables: { c: channel, e: event } }, { authorization: `Bearer ${token}` })).body;

    expect(await send('no spaces allowed', 'hello')).toMatchObject({ errors: [{ message: expect.stringMatching(/^Invalid channel name/) as unknown, extensions: { code: 'BAD_USER_INPUT', field: 'channel' } }] });
    expect(await send('lobby', 'no spaces allowed')).toMatchObject({ errors: [{ message: expect.stringMatching(/^Invalid event name/) as unknown, extensions: { code: 'BAD_USER_INPUT', field: 'event' } }] });
    expect(await send('vip', 'hello')).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN', field: 'channel' } }] });
    expect(await send('lobby', 'hello')).toEqual({ data: { broadcast: true } });
  });
});
