import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type TSchema } from 'typebox'
import { InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../../errors.js'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { MAX_INPUT_PIXELS, PICTURE_FORMATS, PICTURE_MEDIA_TYPES, PICTURE_SIZE, PICTURE_TIMEOUT_SECONDS } from '../../platform/images.js'
import { DeleteUserBody, SignupBody, UpdateUserBody, User, UserIdQuery, UserList, UserListQuery } from './schemas.js'

const tags = ['accounts']

/** The signed-in caller, with where its request came from (what an admin's act is audited with). */
const actorOf = (request: FastifyRequest) => ({ ...request.auth, origin: { address: request.ip, requestId: String(request.id) } })

export async function accountsRoutes(fastify: FastifyInstance, options: { authRateLimitMax: number; pictureMaxBytes: number }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { accounts } = app

  // Open to anyone: signing up.
  app.post('/signup', {
    config: { rateLimit: { max: options.authRateLimitMax, timeWindow: 60_000 } },
    schema: {
      tags,
      operationId: 'signUp',
      summary: 'Create an account',
      description: 'Email is matched case-insensitively. Roles CLIENT and/or WORKER; ADMIN is granted by an admin, never chosen.',
      body: SignupBody,
      response: { 201: User, ...problemResponses(409) },
    },
  }, async (request, reply) => {
    return reply.code(201).send(await accounts.signup(request.body))
  })

  // Raw image bodies (Content-Type: image/*) arrive as a Buffer; multipart is the other way in.
  app.addContentTypeParser(/^image\//, { parseAs: 'buffer', bodyLimit: options.pictureMaxBytes }, (_request, body, done) => done(null, body))

  await signedIn(fastify, async (app) => {
    app.get('/user', {
      schema: {
        tags,
        operationId: 'getUser',
        summary: 'Get a user',
        description: 'The caller by default, or the user `id`. The email and the ADMIN role are shown only to the user and to admins.',
        security: bearerSecurity,
        querystring: UserIdQuery,
        response: { 200: User, ...problemResponses(401, 404) },
      },
    }, async (request) => accounts.get(request.auth.user, request.query.id))

    app.post('/user', {
      schema: {
        tags,
        operationId: 'updateUser',
        summary: 'Update a user',
        description: 'Updates the caller, or with `id` another user (admins only, audited). A new password or email needs `current_password` (an account without a password, made by a provider, a sign-in within the last 5 minutes instead: 403 `recent_sign_in_required`); a new password ends the user\'s other sessions. The last admin keeps ADMIN (409 `last_admin`).',
        security: bearerSecurity,
        body: UpdateUserBody,
        response: { 200: User, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => accounts.update(actorOf(request), request.body))

    app.delete('/user', {
      schema: {
        tags,
        operationId: 'deleteUser',
        summary: 'Delete a user',
        description: 'Deletes the caller, or with `id` another user (admins only, audited); never the last admin (409 `last_admin`). Needs the caller\'s own `current_password` (400 `current_password_required`, 403 `wrong_password`); an account without a password must have signed in within the last 5 minutes instead (403 `recent_sign_in_required`). Sessions, live location and picture go with it; messages and jobs others hold stay theirs.',
        security: bearerSecurity,
        querystring: UserIdQuery,
        body: DeleteUserBody,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(401, 403, 404, 409) },
      },
      // No body at all is an empty one: the service says what is missing, by name.
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {}
      },
    }, async (request, reply) => {
      await accounts.delete(actorOf(request), request.query.id, request.body.current_password)
      return reply.code(204).send(null)
    })

    app.get('/users', {
      schema: {
        tags,
        operationId: 'listUsers',
        summary: 'List users',
        description: '`q` matches first or last name (any case), `role` filters (`ADMIN` only for admins, else 403). Ordered by sign-up; cursor pagination stays stable while users sign up.',
        security: bearerSecurity,
        querystring: UserListQuery,
        response: { 200: UserList, ...problemResponses(401, 403) },
      },
    }, async (request) => accounts.list(request.auth.userId, request.query))

    // Multipart is read by this route only: its hooks (one on every request and answer) cost the
    // others nothing, and a multipart body sent anywhere else is refused (415).
    await app.register(async (scope) => {
      await scope.register(multipart, { throwFileSizeLimit: true })
      const uploads = scope.withTypeProvider<TypeBoxTypeProvider>()
      uploads.put('/user/picture', {
        // Multipart framing adds a little to the file itself.
        bodyLimit: options.pictureMaxBytes + 64 * 1024,
        schema: {
          tags,
          operationId: 'setPicture',
          summary: 'Set the caller\'s picture',
          description: `A \`multipart/form-data\` field \`picture\`, or a raw \`image/*\` body, up to ${Math.round(options.pictureMaxBytes / 1024 / 1024)} MB. ${PICTURE_FORMATS.join(', ')} only, told by the file's bytes, never its name or declared type; anything else (SVG, GIF, TIFF, PDF...) answers 415 \`unsupported_image_format\`. At most ${MAX_INPUT_PIXELS / 1_000_000} megapixels (400 \`image_too_large\`); a file that can't be decoded 400 \`not_an_image\`; decoding that runs past ${PICTURE_TIMEOUT_SECONDS} s stops with 503 \`image_timeout\`. What is kept: the pixels of the first frame, turned upright by the EXIF orientation, cropped to a square around what draws the eye, scaled to ${PICTURE_SIZE} x ${PICTURE_SIZE} px and re-encoded as WebP (quality 82); all metadata (EXIF with GPS and camera, ICC profile, XMP) and any other bytes of the file are dropped.`,
          security: bearerSecurity,
          // Documents both ways in; the image itself is checked by decoding it, not by a schema
          // (these schemas name no type, so they let any upload through to that check).
          body: {
            content: {
              'multipart/form-data': { schema: { properties: { picture: { format: 'binary', description: 'The image' } }, required: ['picture'] } },
              ...Object.fromEntries(PICTURE_MEDIA_TYPES.map((type) => [type, { schema: { format: 'binary', description: 'The image as the whole body' } }])),
            },
          } as unknown as TSchema,
          response: {
            200: User,
            ...problemResponses(401, 413, 415),
            503: { ...(problemResponses(503)[503] as object), description: `Decoding the image ran past ${PICTURE_TIMEOUT_SECONDS} s (\`image_timeout\`)` } as unknown as TSchema,
          },
        },
      }, async (request) => {
        let upload: Buffer
        if (request.isMultipart()) {
          try {
            const file = await request.file({ limits: { fileSize: options.pictureMaxBytes, files: 1, fields: 5 } })
            if (!file || file.fieldname !== 'picture') {
              throw new InvalidInputError('Send the image in the multipart field "picture"', [{ field: 'picture', message: 'is required' }], 'picture_missing')
            }
            upload = await file.toBuffer()
          } catch (error) {
            // Limits and our own errors answer as they are; a body that isn't valid multipart (no
            // boundary, cut short) is the client's, not a 500.
            const status = (error as { statusCode?: number }).statusCode
            if (error instanceof InvalidInputError || (status !== undefined && status < 500)) throw error
            throw new InvalidInputError(`The multipart body can't be read: ${(error as Error).message}`, [{ field: 'picture', message: 'is not valid multipart' }], 'malformed_multipart')
          }
        } else if (Buffer.isBuffer(request.body)) {
          upload = request.body
        } else {
          throw new UnsupportedMediaTypeError('Send multipart/form-data with a "picture" field, or an image/* body')
        }
        if (upload.length > options.pictureMaxBytes) {
          throw new PayloadTooLargeError(`The image is over ${options.pictureMaxBytes} bytes`, 'picture_too_large')
        }
        if (upload.length === 0) throw new InvalidInputError('The image is empty', [{ field: 'picture', message: 'is empty' }], 'not_an_image')
        return accounts.setPicture(request.auth, upload)
      })
    })
  })
  // Open to anyone: a picture is public, like a profile photo in an app.
  app.get('/users/:id/picture', {
    schema: {
      tags,
      operationId: 'getPicture',
      summary: 'A user\'s picture',
      description: 'The picture as `image/webp`, with an `ETag`; `If-None-Match` answers 304. Public, like a profile photo in an app.',
      params: IdParams,
      produces: ['image/webp'],
      response: {
        200: { description: 'The picture', content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } } },
        304: { description: 'Not modified', type: 'null' },
        ...problemResponses(404),
      },
    },
  }, async (request, reply) => {
    const picture = await accounts.picture(request.params.id)
    const etag = `"${picture.etag}"`
    reply.header('etag', etag).header('cache-control', 'public, max-age=300, must-revalidate').header('last-modified', picture.updated_at.toUTCString())
    if (request.headers['if-none-match'] === etag) return reply.code(304).send(null)
    // A Buffer is sent as it is; the schema above only documents it.
    return reply.type('image/webp').send(picture.image as unknown as string)
  })
}
