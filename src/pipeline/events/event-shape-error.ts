import { InternalError } from '../../errors.ts';
import type { RealtimeEvent } from './envelope.ts';

/**
 * An event whose payload is not what its kind promises. Events are built by the catalogue's
 * constructors, so this is a fault inside the platform (or a foreign writer on the log), never the
 * subscriber's mistake: logged and masked.
 */
export function eventShapeError(kind: string, event: RealtimeEvent, what: string): InternalError {
  return new InternalError('EVENT_SHAPE', `${kind} event ${event.id} on "${event.topic}": ${what}`);
}
