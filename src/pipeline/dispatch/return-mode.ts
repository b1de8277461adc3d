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
import type { DocumentEventType } from '../events/document-change.ts';
import type { RealtimeEvent } from '../events/envelope.ts';

/** The first message of `document`: the document at revision R. */
const SNAPSHOT: DocumentEventType = 'sync.snapshot';

/**
 * - FULL: the payload as published.
 * - DATA: the document after the change, without `diff`.
 * - DIFF: the change only, without `data` — but a document's snapshot keeps its `data`.
 * - MINIMAL: neither; the identifiers and the revision (notify only, a snapshot too).
 */
export type ReturnMode = 'FULL' | 'DATA' | 'DIFF' | 'MINIMAL';

/** The event as `mode` delivers it; the same object when nothing changes. Never mutates `event`. */
export function applyReturnMode(event: RealtimeEvent, mode: ReturnMode): RealtimeEvent {
  if (mode === 'FULL' || event.source !== 'sync') return event;
  const payload = event.payload;
  // A snapshot is the base the diffs that follow apply to (it has no diff of its own): without
  // its data a DIFF subscriber could apply nothing, and a document that exists would look like
  // one deleted. MINIMAL asks to be told, not sent: it strips a snapshot like any change.
  const stripData = (mode === 'MINIMAL' || (mode === 'DIFF' && event.type !== SNAPSHOT)) && Object.hasOwn(payload, 'data');
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
