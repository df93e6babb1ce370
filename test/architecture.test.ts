import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { describe, expect, it } from 'vitest'

// Features meet through their front doors: a file reaches into another feature only through that
// feature's index.ts, so that what a feature keeps to itself can change without breaking others.
// The composition root is the one exception: src/app.ts registers every feature's routes.

const SRC = resolve(import.meta.dirname, '../src')
const FEATURES = join(SRC, 'features')

/** Files that may import a feature's routes.ts: the app registers them. */
const ROUTE_REGISTRARS = new Set(['app.ts'])


function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return /\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}

/** The relative module specifiers a file imports or re-exports (static and dynamic). */
function importsOf(text: string): string[] {
  const found: string[] = []
  const patterns = [/\b(?:import|export)\s[^'"]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g]
  for (const pattern of patterns) for (const match of text.matchAll(pattern)) found.push(match[1]!)
  return found.filter((specifier) => specifier.startsWith('.'))
}

/** The feature a file of src/ belongs to, if any. */
function featureOf(path: string): string | undefined {
  const rel = relative(FEATURES, path)
  if (rel.startsWith('..')) return undefined
  return rel.split(sep)[0]
}

/** Every import in src/ that enters another feature by a door other than its index.ts. */
export function crossFeatureImports(root = SRC): string[] {
  const wrong: string[] = []
  for (const file of sourceFiles(root)) {
    const from = featureOf(file)
    for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), specifier).replace(/\.js$/, '.ts')
      const to = featureOf(target)
      if (to === undefined || to === from) continue
      const door = relative(join(FEATURES, to), target)
      if (door === 'index.ts') continue
      const name = `${relative(SRC, file)} -> ${relative(SRC, target)}`.split(sep).join('/')
      if (door === 'routes.ts' && ROUTE_REGISTRARS.has(relative(SRC, file))) continue
      wrong.push(name)
    }
  }
  return wrong
}

describe('features', () => {
  it('reach into each other only through index.ts', () => {
    expect(crossFeatureImports()).toEqual([])
  })

})
