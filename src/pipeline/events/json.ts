/**
 * A JSON object: every event payload is one. Its values are JSON, but the type does not follow
 * them down (documents and row records are whatever the writer stored).
 */
export type JsonObject = { readonly [key: string]: unknown };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
