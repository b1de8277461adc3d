/**
 * Per-subscriber payload trimming (`events(returnMode: ReturnMode)`, seed 000: sync payloads are
 * `{ service, documentId, revision, data?, diff? }`, "diff included for update/delete; stripped
 * per subscriber returnMode").
 *
 * Only `sync` events are trimmed: `data` and `diff` have that meaning only in the sync payload.
 * A database mapping or a socket broadcast may well carry its own `data` key, and stripping it
 * would silently empty the message.
 *
 * The dispatcher calls this once per cohort on the hot path, so the common case (FULL, or a
 * payload with nothing to strip) returns the event itself without allocating.
 */
import type { RealtimeEvent } from '../events/envelope.ts';

/**
 * - FULL: the payload as published.
 * - DATA: the document after the change, without `diff`.
 * - DIFF: the change only, without `data`.
 * - MINIMAL: neither; the identifiers and the revision.
 */
export type ReturnMode = 'FULL' | 'DATA' | 'DIFF' | 'MINIMAL';

/** The event as `mode` delivers it; the same object when nothing changes. Never mutates `event`. */
export function applyReturnMode(event: RealtimeEvent, mode: ReturnMode): RealtimeEvent {
  if (mode === 'FULL' || event.source !== 'sync') return event;
  const payload = event.payload;
  const stripData = (mode === 'DIFF' || mode === 'MINIMAL') && Object.hasOwn(payload, 'data');
  const stripDiff = (mode === 'DATA' || mode === 'MINIMAL') && Object.hasOwn(payload, 'diff');
  if (!stripData && !stripDiff) return event;

  let trimmed: Readonly<Record<string, unknown>>;
  if (stripData && stripDiff) {
    const { data: _data, diff: _diff, ...rest } = payload;
    trimmed = rest;
  } else if (stripData) {
    const { data: _data, ...rest } = payload;
    trimmed = rest;
  } else {
    const { diff: _diff, ...rest } = payload;
    trimmed = rest;
  }
  return { ...event, payload: trimmed };
}
