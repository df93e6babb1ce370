/** A benchmark's numeric setting from the environment: a positive number, or the fallback. */
export function positiveSetting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`)
  return value
}
