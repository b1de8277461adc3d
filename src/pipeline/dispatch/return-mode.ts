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

/**
 * The events a DIFF subscriber builds on: a `document` subscription's first message (the document
 * at revision R) and a creation — the first revision, or a re-creation after a deletion. Neither
 * has a diff (there is no previous document to diff from; a diff of the whole value would carry the
 * document twice in every FULL creation and in the log), so their `data` is the base.
 */
const BASES: ReadonlySet<string> = new Set<DocumentEventType>(['sync.snapshot', 'sync.created']);

/**
 * - FULL: the payload as published.
 * - DATA: the document after the change, without `diff`.
 * - DIFF: the change only, without `data` — but a snapshot and a creation keep their `data`:
 *   they have no diff, and are the base the next diffs apply to.
 * - MINIMAL: neither; the identifiers and the revision (notify only, snapshots and creations too).
 */
export type ReturnMode = 'FULL' | 'DATA' | 'DIFF' | 'MINIMAL';

/** The event as `mode` delivers it; the same object when nothing changes. Never mutates `event`. */
export function applyReturnMode(event: RealtimeEvent, mode: ReturnMode): RealtimeEvent {
  if (mode === 'FULL' || event.source !== 'sync') return event;
  const payload = event.payload;
  // A snapshot or a creation is the base the diffs that follow apply to (it has no diff of its
  // own): without its data a DIFF subscriber could apply nothing — a document that exists would
  // look like one deleted, and one created (again) would be silently missing. MINIMAL asks to be
  // told, not sent: it strips those like any change.
  const stripData = (mode === 'MINIMAL' || (mode === 'DIFF' && !BASES.has(event.type))) && Object.hasOwn(payload, 'data');
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
