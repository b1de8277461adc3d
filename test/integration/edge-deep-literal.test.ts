/**
 * Literals nested deeply in the operation's text: nested past what the parser's stack holds, they
 * are QUERY_TOO_COMPLEX with a plain message (never the engine's own words, never a server fault);
 * nested past MAX_VARIABLE_DEPTH, they are refused as a variable that deep is.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogs, postGraphQL, startTestServer, type LogLine, type TestServer } from '../helpers/tributary.ts';
import { openAcknowledgedSocket, type RawSocket } from '../helpers/ws-client.ts';

const ERROR = 50;
const list = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
const object = (levels: number) => `${'{a: '.repeat(levels)}1${'}'.repeat(levels)}`;
const broadcastOf = (data: string) => `mutation { broadcast(channel: "deep", event: "e", data: ${data}) }`;
const TOO_DEEP_TO_PARSE = 'Operation nested too deeply to parse';

function startServer(env: Record<string, string> = {}) {
  const logs = captureLogs();
  return { logs, started: startTestServer({ LOG_LEVEL: 'debug', ...env }, { autoDispose: false, logDestination: logs }) };
}

async function overSocket(client: RawSocket, id: string, query: string) {
  client.send({ id, type: 'subscribe', payload: { query } });
  return client.waitForMessage((message) => message.id === id);
}

describe('a literal nested past what the parser can hold is QUERY_TOO_COMPLEX', () => {
  let server: TestServer;
  let logs: ReturnType<typeof captureLogs>;
  let roomyServer: TestServer;
  let roomyLogs: ReturnType<typeof captureLogs>;
  beforeAll(async () => {
    const first = startServer();
    // A token limit far above the nesting the parser's stack holds: the overflow, not the limit, stops it.
    const second = startServer({ GRAPHQL_MAX_TOKENS: '100000' });
    [server, roomyServer] = await Promise.all([first.started, second.started]);
    [logs, roomyLogs] = [first.logs, second.logs];
    return async () => {
      await server.dispose();
      await roomyServer.dispose();
    };
  });

  const errorLines = (lines: readonly LogLine[]) => lines.filter((line) => line.level >= ERROR);

  it('answers 2,100 nested lists over HTTP and WebSocket with QUERY_TOO_COMPLEX and a plain message, logging no error', async () => {
    const query = broadcastOf(list(2_100));
    const direct = await postGraphQL(server.graphqlUrl, { query });
    const viaYoga = await postGraphQL(server.graphqlUrl, { query }, { origin: new URL(server.url).origin });
    for (const answer of [direct, viaYoga]) {
      expect(answer.status).toBe(400);
      expect(answer.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'QUERY_TOO_COMPLEX' } })]);
      expect(answer.body.errors![0]!.message).not.toMatch(/call stack/i);
    }
    const client = await openAcknowledgedSocket(server.wsUrl);
    const answer = await overSocket(client, 'm', query);
    expect(answer).toEqual({ id: 'm', type: 'error', payload: [expect.objectContaining({ extensions: { code: 'QUERY_TOO_COMPLEX' } })] });
    expect(JSON.stringify(answer)).not.toMatch(/call stack/i);
    expect(errorLines(logs.lines)).toEqual([]);
  });

  it('answers a stack overflow in the parser with QUERY_TOO_COMPLEX over HTTP and WebSocket', async () => {
    const refused = { message: TOO_DEEP_TO_PARSE, extensions: { code: 'QUERY_TOO_COMPLEX' } };
    for (const query of [broadcastOf(list(20_000)), broadcastOf(object(20_000)), `{ ${'viewer { '.repeat(20_000)}subject${' }'.repeat(20_000)} }`]) {
      const direct = await postGraphQL(roomyServer.graphqlUrl, { query });
      const viaYoga = await postGraphQL(roomyServer.graphqlUrl, { query }, { origin: new URL(roomyServer.url).origin });
      for (const answer of [direct, viaYoga]) expect(answer).toEqual({ status: 400, body: { errors: [expect.objectContaining(refused)] } });
      const client = await openAcknowledgedSocket(roomyServer.wsUrl);
      expect(await overSocket(client, 'm', query)).toEqual({ id: 'm', type: 'error', payload: [expect.objectContaining(refused)] });
    }
    expect(errorLines(roomyLogs.lines)).toEqual([]);
  });
});

describe('an inline literal nested deeper than a variable may be is BAD_USER_INPUT', () => {
  let server: TestServer;
  let logs: ReturnType<typeof captureLogs>;
  beforeAll(async () => {
    const { logs: captured, started } = startServer();
    [server, logs] = [await started, captured];
    return () => server.dispose();
  });

  const tooDeep = (what: string) => `${what} nests objects and arrays more than 100 levels deep`;

  it('refuses lists and objects of 101 and 800 levels over HTTP and WebSocket, and runs 100', async () => {
    const client = await openAcknowledgedSocket(server.wsUrl);
    for (const data of [list(101), object(101), list(800), `{a: [${object(99)}, 2]}`]) {
      const query = broadcastOf(data);
      const refused = { message: tooDeep('Argument "data"'), extensions: { code: 'BAD_USER_INPUT' } };
      const direct = await postGraphQL(server.graphqlUrl, { query });
      const viaYoga = await postGraphQL(server.graphqlUrl, { query }, { origin: new URL(server.url).origin });
      for (const answer of [direct, viaYoga]) expect(answer).toEqual({ status: 400, body: { errors: [expect.objectContaining(refused)] } });
      expect(await overSocket(client, data.slice(0, 8), query)).toEqual({ id: data.slice(0, 8), type: 'error', payload: [expect.objectContaining(refused)] });
    }
    for (const data of [list(100), object(100)]) {
      expect((await postGraphQL(server.graphqlUrl, { query: broadcastOf(data) })).body).toEqual({ data: { broadcast: true } });
    }
    expect(logs.lines.filter((line) => line.level >= ERROR)).toEqual([]);
  });

  it("refuses a variable's default value nested as deeply", async () => {
    const query = `mutation($d: JSON = ${list(101)}) { broadcast(channel: "deep", event: "e", data: $d) }`;
    const answer = await postGraphQL(server.graphqlUrl, { query });
    expect(answer).toEqual({
      status: 400,
      body: { errors: [expect.objectContaining({ message: tooDeep('The default value of variable "$d"'), extensions: { code: 'BAD_USER_INPUT' } })] },
    });
  });
});
