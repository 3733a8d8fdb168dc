// Polling for something another process finishes: `probe` answers null until
// it is done. Used where only the state store (or an API) can tell.
export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== null) return got;
    if (Date.now() > deadline) throw new Error(`${what} did not finish within ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
