import createClient from 'openapi-fetch'
import type { paths } from './schema.js'

export type { paths, components } from './schema.js'

/**
 * A typed client for the API: every path, body, query and answer is checked by TypeScript
 * against the generated schema.
 *
 *   const api = createFreelancerClient('https://api.example.com', token)
 *   const { data, error } = await api.GET('/user', {})
 */
export function createFreelancerClient(baseUrl: string, accessToken?: string) {
  return createClient<paths>({
    baseUrl,
    headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {},
  })
}
