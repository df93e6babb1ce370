import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, startServer, tempDir } from './support/processes.js'

// The README's walkthrough is run as written, block by block, in one bash, against a fresh
// server: each ```sh block, and the ```json block after it (when there is one) is what its
// output must be. In a shown answer, "<uuid>", "<time>" and "<token>" stand for any value of
// that shape, "..." for anything and "text..." for any string that begins with "text"; objects show
// only the keys that matter.

const README = readFileSync('README.md', 'utf8')

interface Step {
  /** The shell text, as written. */
  code: string
  /** The answer shown after it, if any. */
  shown: unknown
  line: number
}

/** The walkthrough's steps: every ```sh block of the section, with the ```json block after it. */
function walkthroughSteps(readme: string): Step[] {
  const start = readme.indexOf('\n## Walkthrough with curl')
  if (start < 0) throw new Error('README has no "## Walkthrough with curl" section')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  const firstLine = readme.slice(0, start).split('\n').length
  const steps: Step[] = []
  for (const match of section.matchAll(/```(sh|json)\n([\s\S]*?)```/g)) {
    const line = firstLine + section.slice(0, match.index).split('\n').length
    if (match[1] === 'sh') steps.push({ code: match[2]!, shown: undefined, line })
    else if (steps.length > 0 && steps.at(-1)!.shown === undefined) steps.at(-1)!.shown = JSON.parse(match[2]!)
    else throw new Error(`README line ${line}: a json block with no sh block before it`)
  }
  return steps
}

/** Splits output into the JSON documents in it (jq prints one after another). */
function jsonDocuments(text: string): unknown[] {
  const documents: unknown[] = []
  let depth = 0
  let inString = false
  let begin = -1
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (c === '"') {
      inString = true
      if (depth === 0) begin = i
    } else if (c === '{' || c === '[') {
      if (depth++ === 0) begin = i
    } else if (c === '}' || c === ']') {
      if (--depth === 0) documents.push(JSON.parse(text.slice(begin, i + 1)))
    }
    // A bare string or number at the top (jq -r prints none in the walkthrough) is not a document.
  }
  return documents
}

const SHAPES: Record<string, RegExp> = {
  '<uuid>': /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  '<time>': /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/,
  '<token>': /^[A-Za-z0-9_-]{20,}$/,
}

/** Where `actual` differs from what the README shows; empty when it matches. */
function differences(actual: unknown, shown: unknown, at = ''): string[] {
  if (shown === '...') return []
  if (typeof shown === 'string' && SHAPES[shown]) return typeof actual === 'string' && SHAPES[shown].test(actual) ? [] : [`${at || '/'}: ${JSON.stringify(actual)} is not a ${shown}`]
  if (typeof shown === 'string' && shown.endsWith('...')) {
    const prefix = shown.slice(0, -3)
    return typeof actual === 'string' && actual.startsWith(prefix) ? [] : [`${at || '/'}: ${JSON.stringify(actual)} does not begin with ${JSON.stringify(prefix)}`]
  }
  if (Array.isArray(shown)) {
    if (!Array.isArray(actual)) return [`${at || '/'}: ${JSON.stringify(actual)} is not an array`]
    if (actual.length !== shown.length) return [`${at || '/'}: ${actual.length} items, the README shows ${shown.length}`]
    return shown.flatMap((item, i) => differences(actual[i], item, `${at}/${i}`))
  }
  if (shown !== null && typeof shown === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${at || '/'}: ${JSON.stringify(actual)} is not an object`]
    return Object.entries(shown).flatMap(([key, value]) =>
      key in actual ? differences((actual as Record<string, unknown>)[key], value, `${at}/${key}`) : [`${at}/${key}: missing`],
    )
  }
  return actual === shown ? [] : [`${at || '/'}: ${JSON.stringify(actual)}, the README shows ${JSON.stringify(shown)}`]
}

const missingTools = ['bash', 'curl', 'jq', 'base64'].filter((tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return false
  } catch {
    return true
  }
})
const required = process.env.CI === 'true'
if (missingTools.length > 0 && !required) console.warn(`skipped test/readme.walkthrough.test.ts (the README's walkthrough): ${missingTools.join(', ')} not found; install them to run it`)

describe('the README', () => {
  it('shows each answer as the checker reads it', () => {
    expect(differences({ id: 'x', n: 1 }, { n: 1 })).toEqual([])
    expect(differences({ n: 2 }, { n: 1 })).toEqual(['/n: 2, the README shows 1'])
    expect(differences({ id: '0190f3c4-0000-7000-8000-000000000001' }, { id: '<uuid>' })).toEqual([])
    expect(differences({ id: 'abc' }, { id: '<uuid>' })).toHaveLength(1)
    expect(differences([1, 2], [1])).toHaveLength(1)
    expect(differences({}, { a: '...' })).toEqual(['/a: missing'])
    expect(differences({ a: 'Hello there' }, { a: 'Hello...' })).toEqual([])
    expect(differences({ a: 'Bye' }, { a: 'Hello...' })).toHaveLength(1)
    expect(jsonDocuments('{"a":"}"}\n[1,{"b":2}]\n')).toEqual([{ a: '}' }, [1, { b: 2 }]])
  })
})

describe.skipIf(missingTools.length > 0 && !required)('the README walkthrough, run as written against a fresh server', () => {
  let server: ReturnType<typeof startServer>
  let api: string
  let dataDir: string
  beforeAll(async () => {
    if (missingTools.length > 0) throw new Error(`CI needs ${missingTools.join(', ')} for the README walkthrough test`)
    dataDir = await tempDir()
    const port = await freePort()
    api = `http://127.0.0.1:${port}`
    server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, BCRYPT_COST: '4' })
    await server.listening()
  }, 150_000)
  afterAll(async () => {
    server?.child.kill('SIGTERM')
    await server?.exited
    await removeTempDirs()
  })

  it('goes from sign-up to a paid job, and every answer is the one the README shows', async () => {
    const steps = walkthroughSteps(README)
    expect(steps.length).toBeGreaterThan(5)
    // One bash runs every block in turn (variables carry over), a marker after each.
    const script = ['set -euo pipefail', ...steps.map((step, i) => `${step.code}\nprintf '\\n@@step ${i}@@\\n'`)].join('\n')
    const bash = spawn('bash', ['-c', script], { cwd: dataDir, env: { ...process.env, API: api, MAIL_DIR: `${dataDir}/mail` }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    bash.stdout.on('data', (d) => (stdout += d))
    bash.stderr.on('data', (d) => (stderr += d))
    const code = await new Promise<number | null>((resolve) => bash.on('exit', resolve))

    const outputs = stdout.split(/\n@@step \d+@@\n/)
    const failures: string[] = []
    steps.forEach((step, i) => {
      if (i >= outputs.length - 1) return
      if (step.shown === undefined) return
      const documents = jsonDocuments(outputs[i]!)
      const problems = documents.length === 0 ? ['printed no JSON'] : differences(documents.at(-1), step.shown)
      if (problems.length > 0) failures.push(`README line ${step.line}:\n${step.code}\nprinted:\n${outputs[i]}\n${problems.join('\n')}`)
    })
    const ran = outputs.length - 1
    if (code !== 0) failures.push(`bash stopped (exit ${code}) in the step at README line ${steps[ran]?.line}:\n${steps[ran]?.code}\n${stderr}`)
    expect(failures.join('\n\n')).toBe('')
    expect(ran).toBe(steps.length)
  }, 120_000)
})
