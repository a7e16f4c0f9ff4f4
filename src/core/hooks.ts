/** Where a failing hook is reported. */
export interface HookLogger {
  warn(message: string): void;
}

/**
 * Calls one of the application's hooks (`authenticate`, `authorize`, `authorizePublish`,
 * `onClientPublish`): a throw is logged as a warning (`<name> threw<about>: <error>`) and
 * answered `fallback`, which is a no. The connection stays; the hook's error is not the client's.
 */
export async function askHook<T, F>(logger: HookLogger, name: string, about: string, call: () => T | Promise<T>, fallback: F): Promise<Awaited<T> | F> {
  try {
    return await call();
  } catch (error) {
    logger.warn(`${name} threw${about}: ${String(error)}`);
    return fallback;
  }
}
