import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { bearerSecurity } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { adminContext, adminOnly } from '../admin/index.js'
import { Category, CategoryList, CategoryTree, CreateCategoryBody, RetireCategoryBody, UpdateCategoryBody } from './schemas.js'

export async function categoriesRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { categories } = app

  // Open to anyone: what apps show when a client picks the kind of work.
  app.get('/categories', {
    schema: {
      tags: ['categories'],
      operationId: 'listCategories',
      summary: 'The categories of work',
      description: 'The tree of offered categories (retired ones left out): top-level categories with their subcategories, by position then name. Answered with an `ETag` and `Cache-Control`; `If-None-Match` with the current ETag answers 304.',
      response: { 200: CategoryTree, 304: { description: 'Not modified', type: 'null' }, ...problemResponses() },
    },
  }, async (request, reply) => {
    const { body, etag } = await categories.tree()
    reply.header('etag', etag).header('cache-control', 'public, max-age=60, must-revalidate')
    if (request.headers['if-none-match'] === etag) return reply.code(304).send(null)
    return body
  })

  await adminOnly(fastify, (app) => {
    const tags = ['admin']
    app.get('/admin/categories', {
      schema: {
        tags,
        operationId: 'adminListCategories',
        summary: 'Every category, retired ones too',
        description: 'ADMIN only.',
        security: bearerSecurity,
        response: { 200: CategoryList, ...problemResponses(401, 403) },
      },
    }, async () => ({ items: await categories.all() }))

    app.post('/admin/categories', {
      schema: {
        tags,
        operationId: 'createCategory',
        summary: 'Create a category',
        description: 'ADMIN only; audited. A subcategory names a top-level `parent_id`: the tree has two levels. Two offered siblings can\'t share a name (409 `category_name_taken`).',
        security: bearerSecurity,
        body: CreateCategoryBody,
        response: { 201: Category, ...problemResponses(401, 403, 409) },
      },
    }, async (request, reply) => reply.code(201).send(await categories.create(adminContext(request), request.body)))

    app.patch('/admin/categories/:id', {
      schema: {
        tags,
        operationId: 'updateCategory',
        summary: 'Rename, move or reorder a category',
        description: 'ADMIN only; audited. `position` orders siblings (lower first); `parent_id` moves it under another top-level category (null: to the top).',
        security: bearerSecurity,
        params: IdParams,
        body: UpdateCategoryBody,
        response: { 200: Category, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => categories.update(adminContext(request), request.params.id, request.body))

    app.delete('/admin/categories/:id', {
      schema: {
        tags,
        operationId: 'retireCategory',
        summary: 'Retire a category',
        description: 'ADMIN only; audited. The category and its subcategories are no longer offered, nor taken by new jobs and profiles; those that have it keep it. Retiring twice answers the category as it is.',
        security: bearerSecurity,
        params: IdParams,
        body: RetireCategoryBody,
        response: { 200: Category, ...problemResponses(401, 403, 404) },
      },
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {}
      },
    }, async (request) => categories.retire(adminContext(request), request.params.id, request.body.reason))
  })
}
