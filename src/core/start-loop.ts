/**
 * Runs `step` at once and then `everyMs` after each run ends, until closed; a step that throws is
 * reported to `onError` and run again next time. `close` stops the wait at once and resolves when the
 * run in progress, if any, is done. `unref`: the wait alone does not keep the process alive.
 */
export function startLoop(
  step: () => Promise<void>,
  options: { everyMs: number; onError(error: unknown): void; unref?: boolean },
): { close(): Promise<void> } {
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      await step().catch(options.onError);
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.everyMs);
        if (options.unref) timer.unref();
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return {
    async close() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
