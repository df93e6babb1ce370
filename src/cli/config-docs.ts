import { readFile, writeFile } from 'node:fs/promises'
import { SETTINGS, type SettingSpec } from '../settings.js'

// `npm run config:generate`: writes `.env.example` and the README's table of settings from
// src/settings.ts. test/config-docs.test.ts fails while either is out of date.

const README_START = '<!-- settings:start (npm run config:generate) -->'
const README_END = '<!-- settings:end -->'

/** The default as text: the value, or what the docs say in its place. */
function shownDefault(spec: SettingSpec): string {
  if (spec.shown) return spec.shown
  if ('default' in spec && spec.default !== undefined) return `\`${typeof spec.default === 'function' ? spec.default() : spec.default}\``
  return 'unset'
}

/** The default as a line of `.env.example` takes it, or undefined when there is none to write. */
function envDefault(spec: SettingSpec): string | undefined {
  if (!('default' in spec) || spec.default === undefined || typeof spec.default === 'function') return undefined
  return String(spec.default)
}

const plain = (markdown: string) => markdown.replace(/`/g, '')
const sentence = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

function wrap(text: string, width = 98): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(line)
  return lines
}

export function envExample(): string {
  const blocks = Object.entries(SETTINGS as Record<string, SettingSpec>).map(([name, spec]) => {
    const value = envDefault(spec)
    const doc = wrap(`${sentence(plain(spec.doc))}. Default: ${plain(shownDefault(spec))}.`).map((l) => `# ${l}`)
    // Settings with no default of their own stay commented out: unset is their default.
    return [...doc, value === undefined ? `# ${name}=` : `${name}=${value}`].join('\n')
  })
  return [
    '# Every setting of the service, with its default. Generated from src/settings.ts by',
    '# `npm run config:generate`; do not edit by hand. Copy it to `.env`, which `npm start` reads,',
    '# and change what you need.',
    '',
    blocks.join('\n\n'),
    '',
  ].join('\n')
}

export function settingsTable(): string {
  const rows = Object.entries(SETTINGS as Record<string, SettingSpec>).map(([name, spec]) => `| \`${name}\` | ${shownDefault(spec)} | ${spec.doc} |`)
  return ['| name | default | meaning |', '| --- | --- | --- |', ...rows].join('\n')
}

/** The README with its table of settings replaced by the current one. */
export function readmeWithSettings(readme: string): string {
  const start = readme.indexOf(README_START)
  const end = readme.indexOf(README_END)
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_START} ... ${README_END} block`)
  return `${readme.slice(0, start + README_START.length)}\n${settingsTable()}\n${readme.slice(end)}`
}

async function main() {
  await writeFile('.env.example', envExample())
  await writeFile('README.md', readmeWithSettings(await readFile('README.md', 'utf8')))
  console.log('wrote .env.example and the settings table of README.md')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
