import { Type, type Static } from 'typebox'
import { Timestamp, Uuid } from '../../http/schemas.js'

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })

export const CategoryNode = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    position: Type.Integer(),
    children: Type.Array(Type.Object({ id: Uuid, name: Type.String(), position: Type.Integer() })),
  },
  { description: 'A top-level category and its subcategories, in their order' },
)

export const CategoryTree = Type.Object(
  { items: Type.Array(CategoryNode) },
  {
    description: 'The categories offered now (retired ones left out), ordered by position then name',
    examples: [{ items: [{ id: '01938d0e-0000-7000-8000-000000000001', name: 'Plumbing', position: 0, children: [{ id: '01938d0e-0000-7000-8000-000000000002', name: 'Leaks', position: 0 }] }] }],
  },
)

export const Category = Type.Object(
  {
    id: Uuid,
    parent_id: Type.Union([Uuid, Type.Null()]),
    name: Type.String(),
    position: Type.Integer(),
    retired_at: Type.Union([Timestamp, Type.Null()]),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  {
    $id: 'Category',
    examples: [{ id: '01938d0e-0000-7000-8000-000000000002', parent_id: '01938d0e-0000-7000-8000-000000000001', name: 'Leaks', position: 0, retired_at: null, created_at: '2026-12-01T09:00:00.000Z', updated_at: '2026-12-01T09:00:00.000Z' }],
  },
)
export type CategoryView = Static<typeof Category>

export const CategoryList = Type.Object({ items: Type.Array(Category) }, { description: 'Every category, retired ones too, ordered by parent, position and name' })

export const CreateCategoryBody = Type.Object(
  {
    name: Name,
    parent_id: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'A top-level category; absent or null for a top-level one' })),
    position: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, description: 'Order among siblings (lower first); default after the last' })),
  },
  { additionalProperties: false, examples: [{ name: 'Leaks', parent_id: '01938d0e-0000-7000-8000-000000000001' }] },
)
export type CreateCategoryInput = Static<typeof CreateCategoryBody>

export const UpdateCategoryBody = Type.Object(
  {
    name: Type.Optional(Name),
    parent_id: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Moves the category under another top-level one, or to the top with null' })),
    position: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    reason: Type.Optional(Type.String({ maxLength: 2000, description: 'Kept in the audit log' })),
  },
  { additionalProperties: false, examples: [{ name: 'Leaks and drips', position: 1 }] },
)
export type UpdateCategoryInput = Static<typeof UpdateCategoryBody>

export const RetireCategoryBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000, description: 'Kept in the audit log' })) },
  { additionalProperties: false },
)
