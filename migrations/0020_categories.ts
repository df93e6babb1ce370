import { sql, type Kysely } from 'kysely'

// Categories of work: a tree of two levels (a category and its subcategories) that admins keep.
// A retired category is never deleted: old jobs and profiles keep pointing at it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('categories')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('parent_id', 'uuid', (c) => c.references('categories.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retired_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  // Two offered siblings never share a name (any case); retired ones free theirs.
  await sql`CREATE UNIQUE INDEX categories_sibling_name ON categories (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(name)) WHERE retired_at IS NULL`.execute(db)
  await sql`ALTER TABLE jobs ADD COLUMN category_id uuid REFERENCES categories (id)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE jobs DROP COLUMN category_id`.execute(db)
  await db.schema.dropTable('categories').execute()
}
