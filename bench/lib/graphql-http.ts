/**
 * One GraphQL operation over HTTP POST, for what a workload sets up or reads back around the
 * timed part (creating a document, configuring CDC, reading a document after a crash). The
 * timed traffic has its own clients (`publisher.ts`, `ws-load-client.ts`).
 */

export interface GraphQLBody {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: unknown;
}

export interface PostOptions {
  /** Sent as `authorization: Bearer …`. @default none (the development principal) */
  readonly token?: string;
  /** A request not answered by then fails, in ms. @default 30000 */
  readonly timeoutMs?: number;
}

/** POSTs one operation; resolves with the HTTP status and the parsed body, whatever they say. */
export async function postGraphQL(url: string, query: string, variables: Record<string, unknown> = {}, options: PostOptions = {}): Promise<{ status: number; body: GraphQLBody }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }) },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  });
  return { status: response.status, body: (await response.json()) as GraphQLBody };
}

/** POSTs one operation and resolves with its `data`; rejects on another status than 200 or on `errors`. */
export async function graphqlData(url: string, query: string, variables: Record<string, unknown> = {}, options: PostOptions = {}): Promise<Record<string, unknown>> {
  const { status, body } = await postGraphQL(url, query, variables, options);
  if (status !== 200 || body.errors !== undefined || !body.data) {
    throw new Error(`${query.slice(0, 40)}…: HTTP ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return body.data;
}

