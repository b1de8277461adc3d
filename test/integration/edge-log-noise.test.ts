/**
 * A client's mistake at the HTTP edge — no token, a malformed one — is answered, not logged as a
 * server fault: a flood of anonymous requests must not fill the log with error lines and stacks.
 * (A real fault still logs at error with its cause: http-errors.test.ts.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { captureLogs, postGraphQL, startTestServer, type LogLine, type TestServer } from '../helpers/tributary.ts';
import { signHs256, startKeySetServer, TEST_SECRET } from '../helpers/tokens.ts';

const ERROR = 50;
const BROADCAST = 'mutation { broadcast(channel: "noise", event: "e", data: 1) }';

describe('a refused token is answered with 401 and logged at debug at most', () => {
  let server: TestServer;
  let logs: ReturnType<typeof captureLogs>;
  beforeAll(async () => {
    logs = captureLogs();
    server = await startTestServer({ JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'debug' }, { autoDispose: false, logDestination: logs });
    return () => server.dispose();
  });

  const errorLines = (): LogLine[] => logs.lines.filter((line) => line.level >= ERROR);

  it('answers a POST without a token or with a malformed one with 401 and writes no error line, on either path', async () => {
    // An Origin takes the request off the direct path, to yoga's own handling.
    const viaYoga = { origin: new URL(server.url).origin };
    const answers = [
      await postGraphQL(server.graphqlUrl, { query: BROADCAST }),
      await postGraphQL(server.graphqlUrl, { query: BROADCAST }, { authorization: 'Bearer not-a-token' }),
      await postGraphQL(server.graphqlUrl, { query: BROADCAST }, viaYoga),
      await postGraphQL(server.graphqlUrl, { query: BROADCAST }, { ...viaYoga, authorization: 'Bearer not-a-token' }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })]);
    }
    expect(answers[1]!.body.errors![0]!.message).toMatch(/malformed/);
    expect(errorLines()).toEqual([]);
  });

  it('answers a refused token on the direct path, without handing it to yoga to verify again, as yoga would', async () => {
    // yoga logs this at debug for every request it handles itself.
    const handledByYoga = () => logs.lines.filter((line) => line.msg === 'Parsing request to extract GraphQL parameters').length;
    const send = (headers: Record<string, string>) =>
      fetch(server.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
        body: JSON.stringify({ query: BROADCAST }),
      });
    const before = handledByYoga();
    const direct = await send({ authorization: 'Bearer not-a-token' });
    expect(handledByYoga()).toBe(before);
    const viaYoga = await send({ authorization: 'Bearer not-a-token', origin: new URL(server.url).origin });
    expect(handledByYoga()).toBe(before + 1);
    expect(direct.status).toBe(viaYoga.status);
    expect(direct.headers.get('content-type')).toBe(viaYoga.headers.get('content-type'));
    expect(await direct.json()).toEqual(await viaYoga.json());
  });

  it('answers a valid token as before', async () => {
    const token = await signHs256({ permissions: ['noise.broadcast'] });
    const answer = await postGraphQL(server.graphqlUrl, { query: BROADCAST }, { authorization: `Bearer ${token}` });
    expect(answer).toEqual({ status: 200, body: { data: { broadcast: true } } });
    expect(errorLines()).toEqual([]);
  });
});

describe('trouble in or behind the server is still logged at error level', () => {
  it('logs a key set that cannot be fetched, which is not the caller\'s mistake, on either path', async () => {
    const keys = await startKeySetServer();
    const logs = captureLogs();
    const server = await startTestServer({ JWT_JWKS_URL: keys.url, LOG_LEVEL: 'debug' }, { logDestination: logs });
    keys.failWith(503);
    const token = await keys.sign('RS256', { permissions: ['noise.broadcast'] });
    const paths: Record<string, string>[] = [{}, { origin: new URL(server.url).origin }];
    for (const headers of paths) {
      const before = logs.lines.length;
      const answer = await postGraphQL(server.graphqlUrl, { query: BROADCAST }, { ...headers, authorization: `Bearer ${token}` });
      expect(answer.status).toBe(503);
      expect(answer.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'UNAVAILABLE' } })]);
      expect(logs.lines.slice(before).some((line) => line.level === ERROR && line.err?.message?.includes('key set') === true)).toBe(true);
    }
  });
});
