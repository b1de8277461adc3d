/**
 * A request of several mutation fields, one refused: the server answers the fields that ran (HTTP
 * and WebSocket alike), and `client.request` rejects with the refusal — carrying that answer in
 * `data`, so a caller reads the id of the event it did publish instead of sending it again.
 */
import { expect, it, onTestFinished } from 'vitest';
import { createClient, TributaryRequestError } from '@tributary/client';
import { signHs256, TEST_SECRET } from '../../../../test/helpers/tokens.ts';
import { startTestServer } from '../../../../test/helpers/tributary.ts';

it('rejects a request with a refused mutation field, with the answers of the fields that ran in `data`', async () => {
  const server = await startTestServer({ JWT_SECRET: TEST_SECRET });
  const token = await signHs256({ sub: 'ada', tenant: 'a', permissions: ['orders.read', 'orders.publish'] });
  const client = createClient({ url: server.wsUrl, getToken: () => token });
  onTestFinished(() => client.close());

  const refused: unknown = await client
    .request('mutation { ran: publish(topic: "orders.status", payload: { n: 1 }) { id topic } refused: publish(topic: "invoices", payload: { n: 2 }) { id } }')
    .then(
      () => undefined,
      (error: unknown) => error,
    );
  expect(refused).toBeInstanceOf(TributaryRequestError);
  const error = refused as TributaryRequestError;
  expect(error.code).toBe('FORBIDDEN');
  expect(error.data).toEqual({ ran: { id: expect.any(String) as unknown, topic: 'orders.status' }, refused: null });

  // A request with no answer at all carries none.
  const alone = await client.request('mutation { publish(topic: "invoices", payload: {}) { id } }').then(
    () => undefined,
    (caught: unknown) => caught as TributaryRequestError,
  );
  expect(alone?.code).toBe('FORBIDDEN');
  expect(alone?.data).toBeUndefined();
});
