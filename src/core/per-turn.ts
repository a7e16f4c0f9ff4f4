/**
 * Collects the calls made during one event-loop turn and serves them all with one `run` (called
 * from `setImmediate`, once I/O callbacks and their promise chains have made their calls). Used
 * where many connections ask a remote store the same kind of question at once (a reconnect
 * storm: thousands of resume reads and start positions): one round trip for the turn instead of
 * one per connection.
 */
export class PerTurn<Request, Result> {
  private queue: Array<{ readonly request: Request; readonly resolve: (result: Result) => void; readonly reject: (error: unknown) => void }> = [];

  /** `run` answers every request of a turn, in order. */
  constructor(private readonly run: (requests: Request[]) => Promise<Result[]>) {}

  call(request: Request): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ request, resolve, reject });
    });
  }

  private flush(): void {
    const calls = this.queue;
    this.queue = [];
    let answer: Promise<Result[]>;
    try {
      answer = this.run(calls.map((c) => c.request));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (results) => calls.forEach((c, i) => c.resolve(results[i]!)),
      (error: unknown) => calls.forEach((c) => c.reject(error)),
    );
  }
}
