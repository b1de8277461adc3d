import { describe, expect, it } from 'vitest';
import { startPrivatePostgres } from '../helpers/services.ts';
import { postGraphQL, startTestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const create = (id: string) => ({ query: `mutation { createDocument(service: "notes", id: "${id}", data: {n: 1}) { id revision } }` });
const read = { query: '{ document(service: "notes", id: "before") { revision } documents(service: "notes") { edges { node { id } } } }' };

describe('the platform database stopped and restarted', () => {
  it('answers UNAVAILABLE while Postgres is down, over HTTP and WebSocket, and works again after it restarts', async () => {
    const postgres = await startPrivatePostgres();
    const server = await startTestServer({ DATABASE_URL: postgres.url });

    expect((await postGraphQL(server.graphqlUrl, create('before'))).body).toEqual({ data: { createDocument: { id: 'before', revision: 1 } } });

    await postgres.stop();

    const created = await postGraphQL(server.graphqlUrl, create('during'));
    expect(created.status).toBe(503);
    expect(created.body.errors).toEqual([
      expect.objectContaining({ message: 'The database is unavailable right now; retry shortly', extensions: { code: 'UNAVAILABLE' } }),
    ]);
    const readWhileDown = await postGraphQL(server.graphqlUrl, read);
    expect(readWhileDown.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);

    const socket = await openAcknowledgedSocket(server.wsUrl);
    socket.send({ id: 'm', type: 'subscribe', payload: create('during-ws') });
    const overSocket = await socket.waitForMessage((message) => message.id === 'm');
    expect(overSocket.payload).toMatchObject({ errors: [{ extensions: { code: 'UNAVAILABLE' } }] });
    socket.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { document(service: "notes", id: "before") { revision } }' } });
    const snapshot = await socket.waitForMessage((message) => message.id === 's');
    expect(snapshot.payload).toMatchObject({ errors: [{ extensions: { code: 'UNAVAILABLE' } }] });

    const ready = await fetch(`http://127.0.0.1:${server.port}/ready`);
    expect(ready.status).toBe(503);

    await postgres.start();

    expect((await postGraphQL(server.graphqlUrl, create('after'))).body).toEqual({ data: { createDocument: { id: 'after', revision: 1 } } });
    expect((await postGraphQL(server.graphqlUrl, read)).body).toEqual({ data: { document: { revision: 1 }, documents: { edges: [{ node: { id: 'after' } }, { node: { id: 'before' } }] } } });
  });
});
