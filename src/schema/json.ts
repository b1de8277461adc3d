/** A JSON value as the `JSON` scalar accepts it in inputs. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
