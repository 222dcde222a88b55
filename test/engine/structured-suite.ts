import { z } from 'zod';

/**
 * The structured-output suite: JSON Schemas as clients send them, each checked on the output by
 * zod's own JSON Schema reader (z.fromJSONSchema), independent of the grammar code under test.
 */
export const SCHEMAS: Record<string, Record<string, unknown>> = {
  string: { type: 'string' },
  integer: { type: 'integer' },
  number: { type: 'number' },
  boolean: { type: 'boolean' },
  null: { type: 'null' },
  'string or null': { type: ['string', 'null'] },
  'enum of strings': { enum: ['red', 'green', 'blue', 'reddish'] },
  'enum of mixed values': { enum: [1, 12, 'one', null, true, 1.5] },
  const: { const: 'fixed' },
  'bounded string': { type: 'string', minLength: 3, maxLength: 8 },
  'exact length string': { type: 'string', minLength: 4, maxLength: 4 },
  'non-negative integer': { type: 'integer', minimum: 0 },
  'zod int bounds': { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
  'flat object': {
    type: 'object',
    properties: { name: { type: 'string' }, age: { type: 'integer' }, alive: { type: 'boolean' } },
    required: ['name', 'age', 'alive'],
    additionalProperties: false,
  },
  'optional properties': {
    type: 'object',
    properties: { a: { type: 'string' }, b: { type: 'number' }, c: { type: 'boolean' }, d: { type: 'null' } },
    required: ['b'],
    additionalProperties: false,
  },
  'no required properties': {
    type: 'object',
    properties: { x: { type: 'integer' }, y: { type: 'integer' } },
    additionalProperties: false,
  },
  'nested objects': {
    type: 'object',
    properties: {
      user: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          address: {
            type: 'object',
            properties: {
              city: { type: 'string', maxLength: 12 },
              zip: { type: 'string', minLength: 5, maxLength: 5 },
            },
            required: ['city', 'zip'],
            additionalProperties: false,
          },
        },
        required: ['id', 'address'],
        additionalProperties: false,
      },
    },
    required: ['user'],
    additionalProperties: false,
  },
  'array of integers': { type: 'array', items: { type: 'integer' } },
  'bounded array': { type: 'array', items: { type: 'boolean' }, minItems: 2, maxItems: 3 },
  'empty array only': { type: 'array', items: { type: 'string' }, maxItems: 0 },
  'array of objects': {
    type: 'array',
    items: {
      type: 'object',
      properties: { k: { type: 'string', maxLength: 6 }, v: { type: 'number' } },
      required: ['k', 'v'],
      additionalProperties: false,
    },
    maxItems: 4,
  },
  'nested arrays': { type: 'array', items: { type: 'array', items: { type: 'integer' }, maxItems: 3 }, maxItems: 3 },
  anyOf: { anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 5 }, { type: 'null' }] },
  'anyOf of objects': {
    anyOf: [
      {
        type: 'object',
        properties: { kind: { const: 'circle' }, r: { type: 'number' } },
        required: ['kind', 'r'],
        additionalProperties: false,
      },
      {
        type: 'object',
        properties: { kind: { const: 'square' }, side: { type: 'integer' } },
        required: ['kind', 'side'],
        additionalProperties: false,
      },
    ],
  },
  '$ref to $defs': {
    type: 'object',
    properties: { home: { $ref: '#/$defs/point' }, work: { $ref: '#/$defs/point' } },
    required: ['home', 'work'],
    additionalProperties: false,
    $defs: {
      point: {
        type: 'object',
        properties: { x: { type: 'number' }, y: { type: 'number' } },
        required: ['x', 'y'],
        additionalProperties: false,
      },
    },
  },
  '$ref to definitions': {
    type: 'array',
    items: { $ref: '#/definitions/color' },
    maxItems: 5,
    $schema: 'http://json-schema.org/draft-07/schema#',
    definitions: { color: { enum: ['cyan', 'magenta'] } },
  },
  'free-form object': { type: 'object' },
  'map of integers': { type: 'object', additionalProperties: { type: 'integer' } },
  'empty object only': { type: 'object', additionalProperties: false },
  'any value': {},
  'described (annotations ignored)': {
    title: 'Answer',
    description: 'an answer',
    type: 'object',
    properties: { answer: { type: 'string', description: 'the answer', examples: ['42'] } },
    required: ['answer'],
    additionalProperties: false,
  },
  'nullable field via anyOf': {
    type: 'object',
    properties: {
      n: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
      tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['n', 'tags'],
    additionalProperties: false,
  },
  'typeless keywords': { properties: { q: { maxLength: 3 } }, required: ['q'], additionalProperties: false },
  'unicode enum': { enum: ['héllo', '日本', 'emoji 😀'] },
  'pattern: a code': { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' },
  'pattern: a date': { type: 'string', pattern: '^\\d{4}-(0[1-9]|1[0-2])-\\d{2}$' },
  'pattern: alternatives': { type: 'string', pattern: '^(yes|no|maybe)$' },
  'pattern unanchored, with maxLength': { type: 'string', pattern: '[a-z]+(_[a-z]+)*', maxLength: 12 },
  'object with patterned fields': {
    type: 'object',
    properties: {
      id: { type: 'string', pattern: '^id_[0-9a-f]{4}$' },
      email: { type: 'string', pattern: '^\\w{1,8}@[a-z]{1,8}\\.(com|org)$' },
      note: { type: 'string', pattern: '^[^,]{0,10}$' },
    },
    required: ['id', 'email', 'note'],
    additionalProperties: false,
  },
};

/** The validator of a schema: zod reading the JSON Schema, not the code under test. */
export function validatorOf(schema: Record<string, unknown>): z.ZodType {
  return z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
}

/** The response_format that asks for a schema. */
export const jsonSchemaFormat = (name: string, schema: Record<string, unknown>) => ({
  type: 'json_schema',
  json_schema: { name: name.replace(/[^a-zA-Z0-9_-]/g, '_'), schema, strict: true },
});
