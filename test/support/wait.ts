/** Waits until `check` answers true, looking every 50 ms; throws after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`still not so after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
