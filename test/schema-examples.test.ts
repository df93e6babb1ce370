import { Value } from 'typebox/value'
import type { TSchema } from 'typebox'
import { describe, expect, it } from 'vitest'
import { SignupBody, User } from '../src/features/accounts/schemas.js'
import { Job, JobBody } from '../src/features/jobs/schemas.js'
import { LocationPosted, PostLocationBody } from '../src/features/location/schemas.js'
import { Message, SendBody } from '../src/features/messaging/schemas.js'
import { WsTicket } from '../src/features/realtime/schemas.js'
import { AccessToken, AuthorizeBody, Session } from '../src/features/sessions/schemas.js'
import { Problem } from '../src/http/problems.js'

// The examples /docs shows are ones the API would take or answer: each fits its schema.

const named: Record<string, TSchema> = { SignupBody, User, Job, JobBody, LocationPosted, PostLocationBody, Message, SendBody, WsTicket, AccessToken, AuthorizeBody, Session, Problem }

describe('the examples in the OpenAPI document', () => {
  it.each(Object.entries(named))('of %s fit the schema', (_name, schema) => {
    const examples = (schema as { examples?: unknown[] }).examples ?? []
    expect(examples.length).toBeGreaterThan(0)
    for (const example of examples) expect([...Value.Errors(schema, example)].map((e) => `${e.instancePath} ${e.message}`)).toEqual([])
  })
})
