import type { Principal } from '../../auth/principal.ts';

/**
 * How many acknowledged sockets one principal — its app, env, tenant and subject — may hold on
 * this instance. A leaked reconnect loop or one user's hundred tabs cannot take the sockets,
 * memory and file descriptors every other user shares.
 */
export interface SubjectQuota {
  /** A place for one more socket of `principal`: the function that gives it back, or undefined when it holds `max` already. */
  take(principal: Principal): (() => void) | undefined;
}

/** A principal's key in per-principal bounds: its app, env, tenant and subject. */
export function subjectKeyOf(principal: Principal): string {
  return `${principal.app}\u0000${principal.env}\u0000${principal.tenant ?? ''}\u0000${principal.subject}`;
}

/** `max` undefined: no quota (development mode, where every caller is one principal). */
export function createSubjectQuota(max: number | undefined): SubjectQuota {
  const held = new Map<string, number>();
  return {
    take(principal) {
      if (max === undefined) return () => {};
      const key = subjectKeyOf(principal);
      const count = held.get(key) ?? 0;
      if (count >= max) return undefined;
      held.set(key, count + 1);
      let given = false;
      return () => {
        if (given) return;
        given = true;
        const left = (held.get(key) ?? 1) - 1;
        if (left > 0) held.set(key, left);
        else held.delete(key);
      };
    },
  };
}
