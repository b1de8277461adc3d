/**
 * Every type, field, argument, input field and enum value of the API carries a description:
 * GraphiQL and every client's IDE show them, and a client developer reads them instead of the
 * README. The schema is the one `npm run codegen` prints (as the schema-drift test builds it).
 */
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  isSpecifiedScalarType,
  type GraphQLNamedType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { generate } from '../../codegen.ts';

const described = (element: { readonly description?: string | null | undefined }): boolean =>
  (element.description ?? '').trim() !== '';

/** The coordinates (`Type`, `Type.field`, `Type.field(arg)`, `Enum.VALUE`) of what has no description. */
function undescribed(type: GraphQLNamedType): string[] {
  const missing: string[] = [];
  if (!described(type)) missing.push(type.name);
  if (isObjectType(type) || isInterfaceType(type)) {
    for (const field of Object.values(type.getFields())) {
      if (!described(field)) missing.push(`${type.name}.${field.name}`);
      for (const arg of field.args) if (!described(arg)) missing.push(`${type.name}.${field.name}(${arg.name})`);
    }
  } else if (isInputObjectType(type)) {
    for (const field of Object.values(type.getFields())) if (!described(field)) missing.push(`${type.name}.${field.name}`);
  } else if (isEnumType(type)) {
    for (const value of type.getValues()) if (!described(value)) missing.push(`${type.name}.${value.name}`);
  }
  return missing;
}

describe('schema descriptions', () => {
  it('describes every type, field, argument, input field and enum value', async () => {
    const schema = buildSchema((await generate()).schema);
    const missing = Object.values(schema.getTypeMap())
      .filter((type) => !type.name.startsWith('__') && !isSpecifiedScalarType(type))
      .flatMap(undescribed)
      .sort();
    expect(missing).toEqual([]);
  });
});
