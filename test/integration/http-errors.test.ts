import { connect } from 'node:net';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { clientErrorResponse } from '../../src/server/http-server.ts';
import { createTestDatabase } from '../helpers/services.ts';
import { captureLogs, postGraphQL, startTestServer, type LogLine, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket } from '../helpers/ws-client.ts';

const DEBUG = 20;
const ERROR = 50;

/** The `next` message of operation `id` that carries only a BAD_USER_INPUT error with `message`. */
function badInputOn(id: string, message: string) {
  return { id, type: 'next', payload: { errors: [expect.objectContaining({ message, extensions: { code: 'BAD_USER_INPUT' } })] } };
}

describe("a caller's mistake in variables is BAD_USER_INPUT, not an internal error", () => {
  let server: TestServer;
  let logs: ReturnType<typeof captureLogs>;
  beforeAll(async () => {
    logs = captureLogs();
    server = await startTestServer({ LOG_LEVEL: 'debug' }, { autoDispose: false, logDestination: logs });
    return () => server.dispose();
  });

  const query = 'query Echo($t: String!) { document(service: $t, id: "x") { id } }';

  function errorLinesMentioning(text: string): LogLine[] {
    return logs.lines.filter((line) => line.level >= ERROR && JSON.stringify(line).includes(text));
  }

  it('answers a variable of the wrong type over HTTP with 400, its message and BAD_USER_INPUT, logged at debug', async () => {
    const response = await fetch(server.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query, variables: { t: 5 } }),
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    const body = (await response.json()) as { errors: { message: string; extensions: Record<string, unknown> }[] };
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]!.message).toBe('Variable "$t" got invalid value 5; String cannot represent a non string value: 5');
    expect(body.errors[0]!.extensions).toEqual({ code: 'BAD_USER_INPUT' });
    expect(errorLinesMentioning('$t')).toEqual([]);
    expect(logs.lines.some((line) => line.level === DEBUG && line.err?.message?.includes('Variable "$t" got invalid value 5') === true)).toBe(true);
  });

  it('answers a missing required variable over HTTP with 400 naming it', async () => {
    const result = await postGraphQL(server.graphqlUrl, { query, variables: {} });
    expect(result.status).toBe(400);
    expect(result.body.errors).toEqual([
      expect.objectContaining({ message: 'Variable "$t" of required type "String!" was not provided.', extensions: { code: 'BAD_USER_INPUT' } }),
    ]);
    expect(errorLinesMentioning('$t')).toEqual([]);
  });

  it('answers the same mistakes over WebSocket with the message and BAD_USER_INPUT', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl);
    client.send({ id: 'q', type: 'subscribe', payload: { query, variables: { t: 5 } } });
    const queried = await client.waitForMessage((message) => message.id === 'q');
    expect(queried).toEqual(badInputOn('q', 'Variable "$t" got invalid value 5; String cannot represent a non string value: 5'));

    client.send({
      id: 's',
      type: 'subscribe',
      payload: { query: 'subscription Watch($t: String!) { events(topic: $t) { id } }', variables: {} },
    });
    const subscribed = await client.waitForMessage((message) => message.id === 's');
    expect(subscribed).toEqual(badInputOn('s', 'Variable "$t" of required type "String!" was not provided.'));
    expect(errorLinesMentioning('$t')).toEqual([]);
  });
});

describe('variables nested too deeply are BAD_USER_INPUT, not an internal error', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { autoDispose: false });
    return () => server.dispose();
  });

  const broadcast = 'mutation($d: JSON) { broadcast(channel: "deep", event: "e", data: $d) }';
  const nested = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}1${']'.repeat(levels)}`);
  const tooDeep = (name: string) => `Variable "$${name}" nests objects and arrays more than 100 levels deep`;

  it('answers over HTTP, on either path, with 400 and runs a variable of 100 levels', async () => {
    const direct = await postGraphQL(server.graphqlUrl, { query: broadcast, variables: { d: nested(101) } });
    // An Origin takes the request off the direct path, to yoga's own handling (the server's own:
    // in development mode another origin is refused before yoga).
    const viaYoga = await postGraphQL(server.graphqlUrl, { query: broadcast, variables: { d: nested(101) } }, { origin: new URL(server.url).origin });
    for (const answer of [direct, viaYoga]) {
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([expect.objectContaining({ message: tooDeep('d'), extensions: { code: 'BAD_USER_INPUT' } })]);
    }
    expect((await postGraphQL(server.graphqlUrl, { query: broadcast, variables: { d: nested(100) } })).body).toEqual({ data: { broadcast: true } });
  });

  it('answers over WebSocket, for a subscription (whose variables graphql-js coerces recursively) and a mutation', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl);
    const subscription = 'subscription($w: EventWhere) { events(topic: "a.b", where: $w) { id } }';
    // Frames written out: JSON.stringify itself cannot serialize values this deep.
    const where = `${'{"not":'.repeat(20_000)}{"field":"type","eq":"x"}${'}'.repeat(20_000)}`;
    client.send(`{"id":"s","type":"subscribe","payload":{"query":${JSON.stringify(subscription)},"variables":{"w":${where}}}}`);
    expect(await client.nextMessage()).toEqual(badInputOn('s', tooDeep('w')));
    expect(await client.nextMessage()).toEqual({ id: 's', type: 'complete' });
    client.send(`{"id":"m","type":"subscribe","payload":{"query":${JSON.stringify(broadcast)},"variables":{"d":${'['.repeat(20_000)}1${']'.repeat(20_000)}}}}`);
    expect(await client.nextMessage()).toEqual(badInputOn('m', tooDeep('d')));
  });
});

describe("an internal fault's message never reaches the client", () => {
  it('masks a database fault over HTTP and WebSocket, and logs it with its cause', async () => {
    const database = await createTestDatabase();
    const logs = captureLogs();
    const server = await startTestServer({ DATABASE_URL: database.url, LOG_LEVEL: 'debug' }, { logDestination: logs });
    // A real fault the client cannot cause: the documents table is gone under the server.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('DROP TABLE sync_documents CASCADE');
    await client.end();

    const mutation = 'mutation { createDocument(service: "notes", id: "n1", data: {a: 1}) { id } }';
    const http = await postGraphQL(server.graphqlUrl, { query: mutation });
    expect(JSON.stringify(http.body)).not.toContain('sync_documents');
    expect(http.body.errors).toEqual([expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } })]);

    const socket = await openAcknowledgedSocket(server.wsUrl);
    socket.send({ id: 'm', type: 'subscribe', payload: { query: mutation } });
    const overSocket = await socket.waitForMessage((message) => message.id === 'm');
    expect(JSON.stringify(overSocket)).not.toContain('sync_documents');
    expect(overSocket.payload).toMatchObject({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });

    socket.send({ id: 'd', type: 'subscribe', payload: { query: 'subscription { document(service: "notes", id: "n1") { revision } }' } });
    const snapshot = await socket.waitForMessage((message) => message.id === 'd');
    expect(JSON.stringify(snapshot)).not.toContain('sync_documents');
    expect(snapshot.payload).toMatchObject({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });

    const logged = logs.lines.filter((line) => line.level === ERROR && line.msg === 'internal error');
    expect(logged.length).toBeGreaterThanOrEqual(3);
    for (const line of logged) expect(line.err?.message).toContain('sync_documents');
  });
});

describe('HTTP headers larger than the server accepts', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, { autoDispose: false });
    return () => server.dispose();
  });

  /** Writes `request` as raw bytes and resolves with everything read until the server closes. */
  const exchange = (request: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1', () => socket.end(request));
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });

  it('answers 431 with a short JSON error over a real socket', async () => {
    const token = 'x'.repeat(16 * 1024);
    const request =
      `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
    const raw = await exchange(request);
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(head.toLowerCase()).toContain('content-type: application/json');
    expect(JSON.parse(body)).toEqual({
      errors: [{ message: 'Request headers are too large', extensions: { code: 'BAD_USER_INPUT' } }],
    });
  });

  it('does not answer a malformed request pipelined behind a valid one with 400, which would read as the valid one’s response', async () => {
    const raw = await exchange('GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nBLAH /\x01 HTTP/1.1\r\n\r\n');
    expect(raw).not.toContain('400 Bad Request');
    // Alone, the same malformed request is answered.
    expect((await exchange('BLAH /\x01 HTTP/1.1\r\n\r\n')).split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
  });

  it('answers a request timeout with 408, not as a malformed request', () => {
    expect(clientErrorResponse('ERR_HTTP_REQUEST_TIMEOUT').split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(clientErrorResponse('HPE_INVALID_METHOD').split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
  });
});
