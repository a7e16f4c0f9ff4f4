import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * A tiny request/reply protocol over Node's IPC channel between the orchestrator and its
 * children (servers under test, load clients). Children answer `{reqId, ok, result|error}` and
 * push `{event, data}` notices on their own.
 */
interface Request {
  reqId: number;
  cmd: string;
  args: unknown;
}
interface Reply {
  reqId: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}
interface Notice {
  event: string;
  data: unknown;
}

type Handler = (args: any) => unknown;

/** Child side: answers the orchestrator's commands with `handlers`. */
export function serveCommands(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('this script is started by bench/run.js, not directly');
  process.on('message', (message: Request) => {
    const handler = handlers[message.cmd];
    // reqId 0: a one-way command (`Child.tell`), nobody waits for its answer.
    const reply = (value: Reply) => message.reqId !== 0 && process.send?.(value);
    if (!handler) return reply({ reqId: message.reqId, ok: false, error: `unknown command ${message.cmd}` });
    Promise.resolve()
      .then(() => handler(message.args))
      .then(
        (result) => reply({ reqId: message.reqId, ok: true, result }),
        (error: unknown) => reply({ reqId: message.reqId, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      );
  });
  // The orchestrator going away must not leave children behind.
  process.on('disconnect', () => process.exit(0));
}

/** Child side: pushes a notice to the orchestrator. */
export function notify(event: string, data: unknown): void {
  process.send?.({ event, data } satisfies Notice);
}

/** Orchestrator side: one forked child and its command channel. */
export class Child {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, Array<(data: any) => void>>();
  private readonly log: WriteStream;
  private exited = false;
  readonly exitPromise: Promise<number | null>;
  /** Lines the child wrote to stderr, and stdout lines that look like warnings or errors. */
  readonly problems: string[] = [];
  stderrLines = 0;
  warnLines = 0;
  errorLines = 0;

  private constructor(
    readonly name: string,
    private readonly process: ChildProcess,
    logPath: string,
  ) {
    this.log = createWriteStream(logPath);
    this.exitPromise = new Promise((resolve) => {
      process.on('exit', (code) => {
        this.exited = true;
        for (const { reject } of this.pending.values()) reject(new Error(`${name} exited (code ${code})`));
        this.pending.clear();
        this.log.end();
        resolve(code);
      });
    });
    process.on('message', (message: Reply | Notice) => {
      if ('reqId' in message) {
        const waiter = this.pending.get(message.reqId);
        this.pending.delete(message.reqId);
        if (!waiter) return;
        if (message.ok) waiter.resolve(message.result);
        else waiter.reject(new Error(`${name}: ${message.error}`));
      } else {
        for (const listener of this.listeners.get(message.event) ?? []) listener(message.data);
      }
    });
    createInterface({ input: process.stdout! }).on('line', (line) => {
      this.log.write(`${line}\n`);
      if (/\bERROR\b/.test(line)) this.noteProblem('error', line);
      else if (/\bWARN\b/.test(line)) this.noteProblem('warn', line);
    });
    createInterface({ input: process.stderr! }).on('line', (line) => {
      this.log.write(`[stderr] ${line}\n`);
      this.noteProblem('stderr', line);
    });
  }

  /** `logPath`: where stdout and stderr go. */
  static start(script: string, options: { name: string; env?: NodeJS.ProcessEnv; execArgv?: string[]; logPath: string }): Child {
    const child = fork(script, [], {
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return new Child(options.name, child, options.logPath);
  }

  get pid(): number {
    return this.process.pid!;
  }

  call<T>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const reqId = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle =
        <V>(f: (v: V) => void) =>
        (v: V) => {
          clearTimeout(timer);
          f(v);
        };
      this.pending.set(reqId, { resolve: settle((v) => resolve(v as T)), reject: settle(reject) });
      this.process.send({ reqId, cmd, args } satisfies Request);
    });
  }

  /** Sends a command whose answer nobody waits for (flow-control credit). */
  tell(cmd: string, args: unknown): void {
    if (!this.exited) this.process.send({ reqId: 0, cmd, args } satisfies Request);
  }

  on(event: string, listener: (data: any) => void): void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  /** Waits for a notice once. */
  once<T>(event: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`)), timeoutMs);
      const listener = (data: T) => {
        clearTimeout(timer);
        this.listeners.set(
          event,
          (this.listeners.get(event) ?? []).filter((l) => l !== listener),
        );
        resolve(data);
      };
      this.on(event, listener);
      this.exitPromise.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited before "${event}"`));
      });
    });
  }

  /** Asks the child to exit; kills it (this child only, by its pid) if it does not within `ms`. */
  async stop(ms = 10_000): Promise<void> {
    if (this.exited) return;
    this.call('exit', {}, ms).catch(() => undefined);
    const timer = setTimeout(() => {
      if (!this.exited) this.process.kill('SIGKILL');
    }, ms);
    await this.exitPromise;
    clearTimeout(timer);
  }

  private noteProblem(kind: 'error' | 'warn' | 'stderr', line: string): void {
    if (kind === 'error') this.errorLines += 1;
    else if (kind === 'warn') this.warnLines += 1;
    else this.stderrLines += 1;
    if (this.problems.length < 20) this.problems.push(`${kind}: ${line.slice(0, 300)}`);
  }
}
