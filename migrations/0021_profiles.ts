import { sql, type Kysely } from 'kysely'

// Workers' profiles, users' ratings, and suspension of accounts by admins.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('profiles')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey().references('users.id'))
    .addColumn('bio', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('hourly_rate_amount', 'integer')
    .addColumn('hourly_rate_currency', 'text')
    .addColumn('service_radius_m', 'integer')
    .addColumn('languages', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createTable('profile_categories')
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('category_id', 'uuid', (c) => c.notNull().references('categories.id'))
    .addPrimaryKeyConstraint('profile_categories_pkey', ['user_id', 'category_id'])
    .execute()
  // The published, visible reviews of a user, summed: the average is sum / count.
  await db.schema
    .createTable('user_ratings')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey().references('users.id'))
    .addColumn('rating_sum', 'integer', (c) => c.notNull().defaultTo(0).check(sql`rating_sum >= 0`))
    .addColumn('rating_count', 'integer', (c) => c.notNull().defaultTo(0).check(sql`rating_count >= 0`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await sql`ALTER TABLE users ADD COLUMN suspended_at timestamptz, ADD COLUMN suspended_reason text`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users DROP COLUMN suspended_at, DROP COLUMN suspended_reason`.execute(db)
  await db.schema.dropTable('user_ratings').execute()
  await db.schema.dropTable('profile_categories').execute()
  await db.schema.dropTable('profiles').execute()
}
