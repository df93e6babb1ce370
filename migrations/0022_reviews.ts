import { sql, type Kysely } from 'kysely'

// Reviews after a paid job: one by each side, blind until both wrote or the window closed.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('reviews')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id'))
    .addColumn('author_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('subject_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('rating', 'integer', (c) => c.notNull().check(sql`rating BETWEEN 1 AND 5`))
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    // When the review is published at the latest: the end of the job's review window.
    .addColumn('publish_by', 'timestamptz', (c) => c.notNull())
    .addColumn('published_at', 'timestamptz')
    .addColumn('hidden_at', 'timestamptz')
    .addColumn('hidden_reason', 'text')
    .addColumn('reply_text', 'text')
    .addColumn('reply_at', 'timestamptz')
    .addUniqueConstraint('reviews_once_per_side', ['job_id', 'author_id'])
    .execute()
  await sql`CREATE INDEX reviews_of_subject ON reviews (subject_id, published_at DESC, id DESC) WHERE published_at IS NOT NULL AND hidden_at IS NULL`.execute(db)
  await sql`CREATE INDEX reviews_pending ON reviews (publish_by) WHERE published_at IS NULL`.execute(db)
  await sql`ALTER TABLE reports ADD COLUMN review_id uuid REFERENCES reviews (id), ADD COLUMN resolution text`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE reports DROP COLUMN review_id, DROP COLUMN resolution`.execute(db)
  await db.schema.dropTable('reviews').execute()
}
