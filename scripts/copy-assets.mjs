// After `tsc`: copies what the compiler does not emit (data files read at run time, such as the
// common-password list) from src/ to dist/src/, beside the modules that read them.
import { cpSync } from 'node:fs'
import path from 'node:path'

const code = /\.(ts|mts|js|mjs|map)$/
cpSync('src', 'dist/src', {
  recursive: true,
  filter: (source) => !code.test(source) || !path.extname(source),
})
