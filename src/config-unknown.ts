/**
 * Environment variables that look like Tributary's but are none of its settings. The schema
 * (config.ts) ignores every other variable — the environment holds PATH, HOME and the like — so a
 * misspelt setting (`DATABSE_URL`, `METRIC_TOKEN`, `TRIBUTRY_ROLE`) would go unnoticed, and the
 * process would start on the default it was meant to replace: the embedded database, `/metrics`
 * without a token, role `all`. `main` logs each at start as a warning.
 */

export interface UnknownSetting {
  readonly name: string;
  /** The setting it is probably a misspelling of. */
  readonly suggestion: string | undefined;
}

/** First segments only Tributary's settings use: any other name under them is a mistake. */
const OWN_PREFIXES = ['TRIBUTARY', 'WS', 'JWT', 'WEBHOOK', 'WEBHOOKS', 'ALERTS', 'ANALYTICS', 'CDC', 'OUTBOX', 'EVENT', 'SYNC', 'DASHBOARD', 'PUBLISH', 'TOPIC', 'METRICS', 'SHUTDOWN'];

/** Edits at most between a name and the setting it is taken for a misspelling of. */
const MAX_EDITS = 2;
/** Names shorter than this are not compared (`PORTS` is not a misspelt `PORT`). */
const MIN_COMPARED_LENGTH = 7;

export function unknownSettings(environment: Readonly<Record<string, string | undefined>>, settings: readonly string[]): UnknownSetting[] {
  const known = new Set(settings);
  const unknown: UnknownSetting[] = [];
  for (const name of Object.keys(environment).sort()) {
    if (known.has(name) || !/^[A-Z][A-Z0-9_]*$/.test(name)) continue;
    const suggestion = name.length >= MIN_COMPARED_LENGTH ? closest(name, settings) : undefined;
    if (suggestion !== undefined || OWN_PREFIXES.includes(name.split('_')[0]!)) unknown.push({ name, suggestion });
  }
  return unknown;
}

/**
 * The setting fewest edits away (at most `MAX_EDITS`; the first listed of equals): `JWT_SECRETES`
 * is a misspelt `JWT_SECRETS` (1 edit), though `JWT_SECRET` is within reach too (2).
 */
function closest(name: string, settings: readonly string[]): string | undefined {
  let best: string | undefined;
  let fewest = MAX_EDITS + 1;
  for (const setting of settings) {
    const edits = editDistance(name, setting);
    if (edits < fewest) [best, fewest] = [setting, edits];
  }
  return best;
}

/** Levenshtein distance, with an adjacent swap counting as one edit (`DATABSE` → `DATABASE`). */
function editDistance(left: string, right: string): number {
  if (Math.abs(left.length - right.length) > MAX_EDITS) return MAX_EDITS + 1;
  const rows: number[][] = Array.from({ length: left.length + 1 }, (_, i) => Array.from({ length: right.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= left.length; i += 1) {
    for (let j = 1; j <= right.length; j += 1) {
      const cost = left[i - 1] === right[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && left[i - 1] === right[j - 2] && left[i - 2] === right[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[left.length]![right.length]!;
}
