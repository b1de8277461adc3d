import { DateTimeResolver } from 'graphql-scalars';
import { builder } from './builder.ts';
import { JsonScalar } from './json-scalar.ts';

builder.addScalarType('JSON', JsonScalar);
builder.addScalarType('DateTime', DateTimeResolver);
