/**
 * A rotated webhook secret is forgotten once its overlap has ended, against a real Postgres: the
 * workers' housekeeping clears the previous secret of every endpoint whose overlap is over, keeps
 * it where the overlap still runs, and leaves `updated_at` — what the endpoint caches reload by —
 * as it was, since no read of the endpoint changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { endpointsVersion, forgetExpiredSecrets, getEndpoint, rotateEndpointSecret } from '../../src/pipeline/webhooks/endpoint-store.ts';
import { newWebhookSecret } from '../../src/pipeline/webhooks/webhook-signature.ts';
import { createDeliveryFixture, type DeliveryFixture } from '../helpers/delivery-fixture.ts';

const HOUR_S = 3_600;

let fixture: DeliveryFixture;
let db: Database;

beforeAll(async () => {
  fixture = await createDeliveryFixture();
  db = fixture.db;
});

afterAll(async () => {
  await fixture?.dispose();
});

type SecretColumns = { secret: string; previous_secret: string | null; previous_secret_expires_at: Date | null; updated_at: Date };

/** The row's secret columns as stored (what reads leave out or ignore included). */
async function stored(id: string): Promise<SecretColumns> {
  const { rows } = await db.query<SecretColumns>(`SELECT secret, previous_secret, previous_secret_expires_at, updated_at FROM webhook_endpoints WHERE id = $1`, [id]);
  return rows[0]!;
}

/** A new endpoint rotated with an overlap of an hour; resolves with its id and both secrets. */
async function rotated(description: string): Promise<{ id: string; previous: string; current: string }> {
  const id = await fixture.endpoint(description);
  const previous = (await getEndpoint(db, id))!.secrets[0]!;
  const current = newWebhookSecret();
  await rotateEndpointSecret(db, id, current, HOUR_S);
  return { id, previous, current };
}

describe('expired webhook secrets', () => {
  it('are cleared once the overlap has ended; a secret still in its overlap is kept, and updated_at is left alone', async () => {
    const expired = await rotated('expired');
    const overlapping = await rotated('overlapping');
    // The overlap ended a minute ago.
    await db.query(`UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 minute' WHERE id = $1`, [expired.id]);
    const expiredBefore = await stored(expired.id);
    const overlappingBefore = await stored(overlapping.id);
    expect(expiredBefore.previous_secret).toBe(expired.previous);
    // Reads already ignore it: what they return is the same before and after it is cleared.
    const readBefore = await getEndpoint(db, expired.id);
    expect(readBefore).toMatchObject({ secrets: [expired.current], previousSecretExpiresAt: null });
    const version = await endpointsVersion(db);

    expect(await forgetExpiredSecrets(db)).toBe(1);

    expect(await stored(expired.id)).toEqual({ ...expiredBefore, previous_secret: null, previous_secret_expires_at: null });
    expect(await getEndpoint(db, expired.id)).toEqual(readBefore);
    // Still signing for the rest of its hour: untouched.
    expect(await stored(overlapping.id)).toEqual(overlappingBefore);
    expect(overlappingBefore.previous_secret).toBe(overlapping.previous);
    expect((await getEndpoint(db, overlapping.id))!.secrets).toEqual([overlapping.current, overlapping.previous]);
    // Nothing any read returns changed: the caches' version is the same, so no instance reloads.
    expect(await endpointsVersion(db)).toBe(version);
    // Nothing is left to clear.
    expect(await forgetExpiredSecrets(db)).toBe(0);
  });
});
