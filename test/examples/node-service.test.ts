/**
 * examples/node-service against a real server with Postgres CDC: the mirror loads the tenant's
 * contacts (the snapshot), then applies each change of `contacts` after it, only the token's tenant;
 * with a token the server refuses, it says why and (run as a program) exits non-zero.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ModelChange } from '@tributary/client';
import { startContactsMirror, type Contact } from '../../examples/node-service/contacts-mirror.ts';
import { CONTACTS_MAPPING, insertContact, saveMappingOk, setUpCdc } from '../helpers/cdc.ts';
import { signHs256 } from '../helpers/tokens.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('Node service example (a mirror of the contacts)', () => {
  it('mirrors every change of its tenant’s contacts, in order', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const subscribers = setup.server.stats().subscribers;
    const applied: ModelChange<Contact>[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => token, onApplied: (change) => void applied.push(change) });
    onTestFinished(() => mirror.close());
    await mirror.ready;
    await waitFor(() => setup.server.stats().subscribers === subscribers + 1, { message: 'the service subscribed' });

    await insertContact(setup, 'a', 'Ann');
    await insertContact(setup, 'b', 'Other tenant');
    await insertContact(setup, 'a', 'Bob');
    await setup.source.query(`UPDATE contacts SET name = 'Ann B.' WHERE name = 'Ann'`);
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Bob'`);
    await waitFor(() => applied.length === 4, { timeoutMs: 15_000, message: 'four changes' });
    expect(applied.map((change) => change.operation)).toEqual(['CREATED', 'CREATED', 'UPDATED', 'DELETED']);
    expect([...mirror.contacts.values()].map((contact) => contact.name)).toEqual(['Ann B.']);
  });

  it('holds the contacts the tenant had before it started, then the changes after them', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    await setup.source.query(`INSERT INTO contacts (tenant_id, status, name) SELECT 'a', 'active', 'Contact ' || n FROM generate_series(1, 10) AS n`);
    await insertContact(setup, 'b', 'Other tenant');
    const token = await signHs256({ tenant: 'a', permissions: ['crm.contacts.read'] });
    const applied: ModelChange<Contact>[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => token, onApplied: (change) => void applied.push(change) });
    onTestFinished(() => mirror.close());

    await mirror.ready;
    expect(mirror.contacts.size).toBe(10);
    // A change committed right after the snapshot comes through the stream joined at its cursor.
    await insertContact(setup, 'a', 'Contact 11');
    await setup.source.query(`DELETE FROM contacts WHERE name = 'Contact 1'`);
    await waitFor(() => applied.length === 2, { timeoutMs: 15_000, message: 'two changes after the snapshot' });
    expect(applied.map((change) => change.operation)).toEqual(['CREATED', 'DELETED']);
    expect(new Set([...mirror.contacts.values()].map((contact) => contact.name))).toEqual(new Set(Array.from({ length: 10 }, (_, index) => `Contact ${index + 2}`)));
  });

  it('rejects `ready` with the server’s reason when the token is refused (4403), and as a program prints it and exits non-zero', async () => {
    const setup = await setUpCdc();
    await saveMappingOk(setup, CONTACTS_MAPPING);
    const errors: unknown[] = [];
    const mirror = startContactsMirror({ url: setup.server.wsUrl, token: () => 'not-a-jwt', onError: (error) => void errors.push(error) });
    onTestFinished(() => mirror.close());
    const refusal = await mirror.ready.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toMatchObject({ name: 'SessionEndedError', closeCode: 4403, reason: expect.stringMatching(/^Forbidden: /) as unknown });
    expect(mirror.status).toBe('unauthorized');
    expect(errors).toContain(refusal);

    // The program: the error on stderr, exit code 1 — not waiting for ever.
    const script = fileURLToPath(new URL('../../examples/node-service/contacts-mirror.ts', import.meta.url));
    const child = spawn(process.execPath, ['--conditions=tributary-source', script], {
      env: { PATH: process.env['PATH'] ?? '', TRIBUTARY_WS_URL: setup.server.wsUrl, TRIBUTARY_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/close code 4403: Forbidden: No token/);
  }, 60_000);
});
