import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { Profile, PublicProfile, UpdateProfileBody } from './schemas.js'

const tags = ['accounts']

export async function profilesRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { profiles } = app

  // Open to anyone, like a picture: what a client looks at before offering a job.
  app.get('/users/:id', {
    schema: {
      tags,
      operationId: 'getPublicProfile',
      summary: 'A user\'s public profile',
      description: 'The user (never the email), its worker profile, its rating from published reviews and the jobs it did. A deleted or suspended user is 404.',
      params: IdParams,
      response: { 200: PublicProfile, ...problemResponses(404) },
    },
  }, async (request) => profiles.publicProfile(request.params.id))

  await signedIn(fastify, (app) => {
    app.get('/user/profile', {
      schema: {
        tags,
        operationId: 'getOwnProfile',
        summary: 'The caller\'s profile',
        security: bearerSecurity,
        response: { 200: Profile, ...problemResponses(401) },
      },
    }, async (request) => profiles.own(request.auth.user))

    app.post('/user/profile', {
      schema: {
        tags,
        operationId: 'updateProfile',
        summary: 'Change the caller\'s worker profile',
        description: 'WORKER only (403 otherwise). Changes the fields given; `null` takes one off. `bio` up to 2000 characters; `category_ids` replaces the list (each offered: unknown 400 `category_not_found`, retired 409 `category_retired` unless the profile has it already); `hourly_rate` in minor units with an ISO 4217 currency (400 `unknown_currency`); `languages` BCP 47 tags (400 `invalid_language`), stored canonical. Shows in searches at once.',
        security: bearerSecurity,
        body: UpdateProfileBody,
        response: { 200: Profile, ...problemResponses(401, 403, 409) },
      },
    }, async (request) => profiles.update(request.auth.user, request.body))
  })
}
