/**
 * Building a mapping's topic from a row change (`mapping-evaluate.ts`).
 *
 * A placeholder `{$row.col}` / `{$old.col}` is replaced by the value's text, encoded by
 * {@link encodeTopicSegment} so it stays inside one segment: letters, digits, `_` and `-` are
 * kept, every other byte becomes `:XX`. A row value can therefore never add a `.` level
 * (permissions are prefixes of the topic hierarchy, `auth/permissions.ts`) nor collide with
 * another value. A null, empty, non-scalar or unavailable value, a topic past the name rules, or
 * one of Tributary's own topics (`events/system-topics.ts`) builds no topic: the change loses its
 * mapping topic's event only — its model stream events need no topic (`EvaluatedChange`).
 */
import { isReservedTopic } from '../../events/system-topics.ts';
import { type CompiledMapping, isValidName, type Ref } from './mapping-compile.ts';
import { describe, textOf, UNAVAILABLE, UnroutableRowError } from './mapping-identity.ts';

/** The mapping topic, or why this row cannot build it. */
export type TopicOutcome = { readonly topic: string } | { readonly topic: undefined; readonly topicProblem: UnroutableRowError };

/**
 * The topic of a change under a compiled mapping; `read` gives a placeholder's value (`UNAVAILABLE`
 * when Postgres did not send it). Errors other than an unroutable topic are thrown.
 */
export function topicOutcome(plan: CompiledMapping, mapping: string, read: (ref: Ref) => unknown): TopicOutcome {
  try {
    return { topic: topicOf(plan, mapping, read) };
  } catch (error) {
    if (!(error instanceof UnroutableRowError)) throw error;
    return { topic: undefined, topicProblem: error };
  }
}

/**
 * A value as it appears inside a templated topic: letters, digits, `_` and `-` unchanged, every
 * other UTF-8 byte as `:XX` (`in progress` → `in:20progress`, `a.b` → `a:2Eb`). Injective, and
 * never a `.`, so a value stays one segment. Clients use it to name the topic for a value.
 */
export function encodeTopicSegment(text: string): string {
  if (/^[A-Za-z0-9_-]*$/.test(text)) return text;
  return encodeURIComponent(text.toWellFormed())
    .replace(/[.!~*'()]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('%', ':');
}

function topicOf(plan: CompiledMapping, mapping: string, read: (ref: Ref) => unknown): string {
  const first = plan.topic[0];
  const topic = plan.topic.length === 1 && typeof first === 'string' ? first : builtTopic(plan, mapping, read);
  if (isReservedTopic(topic)) throw new UnroutableRowError('topic-invalid', mapping, "the topic is one of Tributary's own topics or a sync documents topic");
  return topic;
}

function builtTopic(plan: CompiledMapping, mapping: string, read: (ref: Ref) => unknown): string {
  let topic = '';
  for (const part of plan.topic) {
    if (typeof part === 'string') {
      topic += part;
      continue;
    }
    const value = read(part);
    const text = value === UNAVAILABLE || value === null ? undefined : textOf(value);
    if (text === undefined || text === '') {
      const what = value === UNAVAILABLE ? 'unavailable' : describe(value);
      const placeholder = `{$${part.source}.${part.column}}`;
      throw new UnroutableRowError('topic-value-invalid', mapping, `topic placeholder ${placeholder} is ${what}`);
    }
    topic += encodeTopicSegment(text);
  }
  if (!isValidName('topic', topic)) {
    const why = `the topic built from the row is not a valid topic name (${topic.length} characters)`;
    throw new UnroutableRowError('topic-invalid', mapping, why);
  }
  return topic;
}
