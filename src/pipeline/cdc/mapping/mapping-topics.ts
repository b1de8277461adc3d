/**
 * The topics a mapping publishes to: its own (`topic`, maybe a template) and its model stream
 * `{module}.{model}` (what `changes(model:)` reads), and what keeps one mapping's events out of
 * another's model stream and out of Tributary's own topics.
 */
import { isReservedTopic } from '../../events/system-topics.ts';
import type { DomainMapping } from './mapping.ts';

/** The model stream a mapping's changes also go to (what `changes(model:)` reads). */
export function modelTopic(mapping: Pick<DomainMapping, 'module' | 'model'>): string {
  return `${mapping.module}.${mapping.model}`;
}

/** A topic template as a pattern: `{…}` placeholders match one segment. */
export function topicPattern(template: string): RegExp {
  const source = template
    .split(/(\{[^}]*\})/)
    .map((part) => (part.startsWith('{') ? '[^.]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * What would let one mapping's events land in a model stream that is not its own: its topic is
 * (or its template can produce) a model stream `{module}.{model}`, or its model stream is a topic
 * another mapping can produce, or its model already belongs to another module.
 */
export function streamConflicts(mapping: DomainMapping, others: readonly DomainMapping[]): string[] {
  const problems = systemTopicProblems(mapping);
  const ownStream = modelTopic(mapping);
  if (topicPattern(mapping.topic).test(ownStream)) {
    problems.push(`topic "${mapping.topic}" is the model stream of ${ownStream} (read it with changes(model:)); choose another topic`);
  }
  for (const other of others) {
    if (other.model === mapping.model && other.module !== mapping.module) {
      problems.push(`model "${mapping.model}" already belongs to module "${other.module}" (mapping "${other.name}")`);
    }
    if (topicPattern(mapping.topic).test(modelTopic(other))) {
      problems.push(`topic "${mapping.topic}" would publish into the model stream ${modelTopic(other)} of mapping "${other.name}"`);
    }
    if (topicPattern(other.topic).test(ownStream)) {
      problems.push(`the model stream ${ownStream} is a topic of mapping "${other.name}" ("${other.topic}"); choose another module or model`);
    }
  }
  return problems;
}

/**
 * What would make a mapping publish onto Tributary's own topics (`system.alerts`, `gateway.*`, …:
 * `events/system-topics.ts`), which subscribers and webhook endpoints trust and nobody may publish
 * to: its model stream, its plain topic, or a template whose fixed first segment is one of them
 * (`system.{$row.kind}`). A template whose first segment a row value fills can still build one;
 * `evaluateMapping` sets such a row aside.
 */
export function systemTopicProblems(mapping: Pick<DomainMapping, 'module' | 'model' | 'topic'>): string[] {
  const problems: string[] = [];
  const stream = modelTopic(mapping);
  if (isReservedTopic(stream)) {
    const fields = isReservedTopic(`${mapping.module}.`) ? `module "${mapping.module}"` : `module "${mapping.module}" with model "${mapping.model}"`;
    problems.push(`${fields}: the model stream ${stream} is one of Tributary's own topics (or sync documents'), which no mapping may publish to; choose another module or model`);
  }
  const open = mapping.topic.indexOf('{');
  const fixed = open < 0 ? mapping.topic : mapping.topic.slice(0, open);
  const firstSegment = fixed.includes('.') ? fixed.slice(0, fixed.indexOf('.') + 1) : undefined;
  if (open < 0 ? isReservedTopic(fixed) : firstSegment !== undefined && isReservedTopic(firstSegment)) {
    problems.push(`topic "${mapping.topic}" is one of Tributary's own topics (or sync documents'), which no mapping may publish to; choose another topic`);
  }
  return problems;
}
