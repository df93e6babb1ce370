import { sql, type Kysely } from 'kysely'

// Sign-in with OpenID Connect. An identity is the pair (issuer, subject) a provider vouches for,
// never an email. A sign-in under way (state, nonce, PKCE verifier) lives a few minutes in
// `oidc_flows`, found by the hash of its state and deleted by its one use; the code an app
// exchanges for a session lives a minute in `oidc_exchange_codes`, found by its hash.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('user_identities')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz', (c) => c.notNull())
    .addUniqueConstraint('user_identities_issuer_subject', ['issuer', 'subject'])
    .execute()
  await db.schema.createIndex('user_identities_user').on('user_identities').columns(['user_id', 'id']).execute()

  await db.schema
    .createTable('oidc_flows')
    .addColumn('state_hash', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('code_verifier', 'text', (c) => c.notNull())
    .addColumn('app_redirect', 'text')
    .addColumn('roles', sql`text[]`)
    .addColumn('link_user_id', 'uuid')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('oidc_flows_expiry').on('oidc_flows').column('expires_at').execute()

  await db.schema
    .createTable('oidc_exchange_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('user_agent', 'text')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('oidc_exchange_codes_expiry').on('oidc_exchange_codes').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('oidc_exchange_codes').execute()
  await db.schema.dropTable('oidc_flows').execute()
  await db.schema.dropTable('user_identities').execute()
}
