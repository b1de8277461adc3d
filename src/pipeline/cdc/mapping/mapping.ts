/**
 * Domain mappings: the declarative rules that turn one decoded row change into one domain event
 * (seed 000 "Mapping Evaluator", issue 5 §3). Pure: parse (here), check against a table
 * (`mapping-check.ts`), evaluate (`mapping-evaluate.ts`); `mapping-compile.ts` holds the compiler
 * the three share and the size limits.
 *
 * A mapping, as JSON (`parseMapping` validates it and reports the path of the first bad field):
 *
 *   { "name": "contacts-by-status", "table": "crm.contacts",        // "table" alone means public.table
 *     "events": ["insert", "update", "delete"],
 *     "when": { "or": [{ "changed": "status" }, { "eq": ["$row.vip", true] }] },   // optional
 *     "topic": "crm.contacts.{$row.status}",                            // plain or templated
 *     "payload": { "id": "$row.id", "before": { "status": "$old.status" }, "source": "crm" }, // optional
 *     "module": "crm", "model": "contacts",          // permission `crm.contacts.read` (`mappingPermission`)
 *     "tenantColumn": "tenant_id",                   // optional: the column holding the tenant id
 *     "key": ["id"],                                 // optional: the entity key (default: see `key` below)
 *     "softDeleteColumn": "deleted_at",              // optional: see "Soft deletes" below
 *     "type": "contact.changed" }                    // optional: default `{model}.created|updated|deleted`
 *
 * Names are matched as the catalog stores them (case-sensitive): identifiers of 1–63 letters,
 * digits, `_` or `$`, not starting with a digit.
 *
 * References. `$row.col` is the row after the change (for a delete: the row as it was);
 * `$old.col` the row before it (null on insert; the same as `$row` on delete). A string value
 * starting with `$` must be a reference; write `$$` for a literal leading `$` (`"$$5"` is "$5").
 *
 * Conditions (`when`), one operator per object:
 *
 *   Condition := { "changed": Column }            the column's value changed
 *              | { "eq": [Operand, Operand] }     equal (JSON equality; numbers, bigints and
 *                                                 decimal strings compare by value)
 *              | { "in": [Operand, [Literal, …]] } equal to one of 1–100 literals (taken verbatim)
 *              | { "and": [Condition, …] } | { "or": [Condition, …] }   1–64 children
 *              | { "not": Condition }
 *   Operand   := "$row.col" | "$old.col" | Literal
 *   Literal   := string | number | boolean | null
 *
 * A string in `when` or `payload` may not hold a NUL character (U+0000) or half of a surrogate
 * pair: the definition is stored as jsonb, which cannot hold them.
 *
 * Soft deletes (seed 004 "Soft-deleted contact"). With `softDeleteColumn`, a row counts as deleted
 * while that column holds anything but NULL or false (a `deleted_at` timestamp, an `is_deleted`
 * flag). An UPDATE that sets it is announced as a delete (`DELETED`, type `{model}.deleted`,
 * `metadata.operation` "delete"), one that clears it as an insert (`CREATED`); updates while it
 * stays set, a row inserted already deleted, and the hard DELETE of a soft-deleted row are not
 * announced: subscribers were told the row is gone and are not told about it again until it comes
 * back. `events` lists the announced operations (a soft delete needs "delete", a restore
 * "insert"). The transition needs the old value, so the table needs REPLICA IDENTITY FULL
 * (checked on save).
 *
 * At most `MAX_CONDITION_DEPTH` levels and `MAX_CONDITION_NODES` operators (`mapping-compile.ts`).
 * How values Postgres does not send are treated, and how templated topics are encoded, is
 * described in `mapping-evaluate.ts`.
 */
import { z } from 'zod';
import { ErrorCode, TributaryError } from '../../../errors.ts';
import {
  compileCondition,
  compiled,
  compilePayloadRoot,
  compileTopic,
  contextOf,
  formatPath,
  IDENTIFIER,
  IDENTIFIER_TEXT,
  isValidName,
  type CompileContext,
  type Literal,
  type Path,
} from './mapping-compile.ts';
import type { RowOperation, TableRef } from '../row-change.ts';

/** A reference (`$row.col`, `$old.col`), an escaped literal (`$$…`) or a literal. */
export type Operand = Literal;

export type Condition =
  | { readonly changed: string }
  | { readonly eq: readonly [Operand, Operand] }
  | { readonly in: readonly [Operand, readonly Literal[]] }
  | { readonly and: readonly Condition[] }
  | { readonly or: readonly Condition[] }
  | { readonly not: Condition };

/** Payload values: references, literals, lists and nested objects. */
export type PayloadValue = Operand | readonly PayloadValue[] | { readonly [key: string]: PayloadValue };
export type PayloadTemplate = { readonly [key: string]: PayloadValue };

export interface DomainMapping {
  /** Unique name of the mapping, for logs and admin. */
  readonly name: string;
  /** Always qualified after parsing: `schema.table`. */
  readonly table: string;
  /** Distinct, in the given order. */
  readonly events: readonly RowOperation[];
  readonly when?: Condition;
  /** A topic name, or a template with `{$row.col}` / `{$old.col}` placeholders. */
  readonly topic: string;
  /** Absent: the payload is the full record. */
  readonly payload?: PayloadTemplate;
  readonly module: string;
  readonly model: string;
  readonly tenantColumn?: string;
  /** The column that marks a row soft-deleted (not NULL and not false); see "Soft deletes" above. */
  readonly softDeleteColumn?: string;
  /**
   * The columns whose values identify the entity (its events are ordered per entity). Absent: the
   * table's primary key (which the caller passes to `evaluateMapping`), else the change's key
   * columns (the table's replica identity).
   */
  readonly key?: readonly string[];
  /** Absent: `{model}.created`, `{model}.updated` or `{model}.deleted`. */
  readonly type?: string;
}

const TABLE = /^(?:([A-Za-z_][A-Za-z0-9_$]{0,62})\.)?([A-Za-z_][A-Za-z0-9_$]{0,62})$/;
/** A mapping's name, as `saveCdcMapping` takes it (and `deleteCdcMapping` checks it). */
export const MAPPING_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
export const MAPPING_NAME_TEXT = 'use 1–100 letters, digits, _ . -, starting with a letter or digit';
const PART_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const PART_NAME_TEXT = 'use 1–63 letters, digits, _ or -, starting with a letter';

const MappingSchema = z.strictObject({
  name: z.string().regex(MAPPING_NAME, { error: MAPPING_NAME_TEXT }),
  table: z.string().transform((text, ctx) => {
    const match = TABLE.exec(text);
    if (match === null) {
      ctx.addIssue({ code: 'custom', message: `use "schema.table" or "table", each ${IDENTIFIER_TEXT}` });
      return z.NEVER;
    }
    return `${match[1] ?? 'public'}.${match[2] ?? ''}`;
  }),
  events: z
    .array(z.enum(['insert', 'update', 'delete']))
    .min(1, { error: 'list at least one of insert, update, delete' })
    .max(3)
    .transform((events) => [...new Set(events)]),
  when: z
    .unknown()
    .optional()
    .superRefine((when, ctx) => {
      if (when === undefined) return;
      compileCondition(when, ['when'], contextOf(ctx), 1);
      reportUnstorableStrings(when, ['when'], contextOf(ctx));
    }),
  topic: z.string().superRefine((topic, ctx) => void compileTopic(topic, contextOf(ctx))),
  payload: z
    .unknown()
    .optional()
    .superRefine((payload, ctx) => {
      if (payload === undefined) return;
      compilePayloadRoot(payload, contextOf(ctx));
      reportUnstorableStrings(payload, ['payload'], contextOf(ctx));
    }),
  module: z.string().regex(PART_NAME, { error: PART_NAME_TEXT }),
  model: z.string().regex(PART_NAME, { error: PART_NAME_TEXT }),
  tenantColumn: z.string().regex(IDENTIFIER, { error: `expected ${IDENTIFIER_TEXT}` }).optional(),
  softDeleteColumn: z.string().regex(IDENTIFIER, { error: `expected ${IDENTIFIER_TEXT}` }).optional(),
  key: z
    .array(z.string().regex(IDENTIFIER, { error: `expected ${IDENTIFIER_TEXT}` }))
    .min(1)
    .max(32)
    .refine((columns) => new Set(columns).size === columns.length, { error: 'key columns must be distinct' })
    .optional(),
  type: z
    .string()
    .refine((type) => isValidName('type', type), {
      error: 'use 1–200 letters, digits and _ . : / -, starting with a letter or digit',
    })
    .optional(),
});

/**
 * Validates a mapping (e.g. an admin mutation's JSON) and returns it normalized: qualified table,
 * distinct events, private copies of `when` and `payload`. Throws BAD_USER_INPUT whose message
 * lists the problems and whose `details.path` is the first bad field (`when.and[1].eq[0]`).
 */
export function parseMapping(input: unknown): DomainMapping {
  const result = MappingSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 10).map((issue) => ({
      path: formatPath(issue.path),
      message: issue.message,
    }));
    const text = issues.map(({ path, message }) => (path === '' ? message : `${path}: ${message}`)).join('; ');
    throw new TributaryError(ErrorCode.BAD_USER_INPUT, `Invalid mapping: ${text}`, {
      details: { field: 'mapping', path: issues[0]?.path ?? '', issues },
    });
  }
  const { when, payload, tenantColumn, softDeleteColumn, key, type, ...rest } = result.data;
  const mapping: DomainMapping = {
    ...rest,
    ...(when === undefined ? {} : { when: structuredClone(when) as Condition }),
    ...(payload === undefined ? {} : { payload: structuredClone(payload) as PayloadTemplate }),
    ...(tenantColumn === undefined ? {} : { tenantColumn }),
    ...(softDeleteColumn === undefined ? {} : { softDeleteColumn }),
    ...(key === undefined ? {} : { key }),
    ...(type === undefined ? {} : { type }),
  };
  compiled(mapping);
  return mapping;
}

/**
 * Reports each string inside `value` that jsonb cannot store (a NUL, or half of a surrogate pair:
 * Postgres refuses the whole definition, SQLSTATE 22P05 / 22P02). Keys need no look: the compiler
 * allows operators and payload keys of plain letters only. A stack, not recursion: the compiler
 * reports a value nested too deep, it does not keep it out of this walk.
 */
function reportUnstorableStrings(value: unknown, path: Path, ctx: CompileContext): void {
  const stack: [unknown, Path][] = [[value, path]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [current, at] = next;
    if (typeof current === 'string') {
      if (current.includes('\u0000') || !current.isWellFormed()) ctx.report(at, 'a string may not hold a NUL character (U+0000) or half of a surrogate pair');
    } else if (Array.isArray(current)) {
      // Pushed last first: reported in document order.
      for (let index = current.length - 1; index >= 0; index -= 1) stack.push([current[index] as unknown, [...at, index]]);
    } else if (typeof current === 'object' && current !== null) {
      for (const [key, item] of Object.entries(current).reverse()) stack.push([item, [...at, key]]);
    }
  }
}

/** The permission a model subscription to this mapping's model needs (seed 004). */
export function mappingPermission(mapping: Pick<DomainMapping, 'module' | 'model'>): string {
  return `${mapping.module}.${mapping.model}.read`;
}

export function mappingTable(mapping: Pick<DomainMapping, 'table'>): TableRef {
  const dot = mapping.table.indexOf('.');
  if (dot < 0) return { schema: 'public', name: mapping.table };
  return { schema: mapping.table.slice(0, dot), name: mapping.table.slice(dot + 1) };
}
