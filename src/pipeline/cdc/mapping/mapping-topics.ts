/**
 * The topics a mapping publishes to: its own (`topic`, maybe a template) and its model stream
 * `{module}.{model}` (what `changes(model:)` reads), and what keeps one mapping's events out of
 * another's model stream.
 */
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
  const problems: string[] = [];
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
