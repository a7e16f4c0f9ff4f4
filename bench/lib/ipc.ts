/**
 * The child side of a tiny request/reply protocol over Node's IPC channel between the orchestrator
 * (`Child` in processes.ts) and its children (servers under test, load clients): requests
 * `{reqId, cmd, args}` are answered `{reqId, ok, result|error}`, and children push `{event, data}`
 * notices (`ready`, `progress`) on their own.
 */
export interface Request {
  reqId: number;
  cmd: string;
  args: unknown;
}
export type Reply = { reqId: number; ok: boolean; result?: unknown; error?: string };
export type Notice = { event: string; data: unknown };

/** Answers the orchestrator's commands with `handlers`. */
export function serveCommands(handlers: Record<string, (args: any) => unknown>): void {
  if (!process.send) throw new Error('this script is started by bench/run.js, not directly');
  process.on('message', (message: Request) => {
    const handler = handlers[message.cmd];
    // reqId 0: a one-way command (`Child.tell`), nobody waits for its answer.
    const reply = (value: Omit<Reply, 'reqId'>) => message.reqId !== 0 && process.send?.({ reqId: message.reqId, ...value });
    if (!handler) return reply({ ok: false, error: `unknown command ${message.cmd}` });
    Promise.resolve()
      .then(() => handler(message.args))
      .then(
        (result) => reply({ ok: true, result }),
        (error: unknown) => reply({ ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      );
  });
  // The orchestrator going away must not leave children behind.
  process.on('disconnect', () => process.exit(0));
}

/** Pushes a notice to the orchestrator. */
export function notify(event: string, data: unknown): void {
  process.send?.({ event, data } satisfies Notice);
}
