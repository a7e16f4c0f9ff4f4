/** A tiny typed event emitter (Node-free). A listener that throws does not stop the others. */
export class Emitter<Events extends object> {
  private readonly listeners: { [K in keyof Events]?: Set<(value: Events[K]) => void> } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): () => void {
    (this.listeners[name] ??= new Set()).add(listener);
    return () => this.off(name, listener);
  }

  off<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): void {
    this.listeners[name]?.delete(listener);
  }

  emit<K extends keyof Events>(name: K, value: Events[K]): void {
    for (const listener of [...(this.listeners[name] ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        // A listener's bug must not break the connection loop; surface it asynchronously.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  listenerCount(name: keyof Events): number {
    return this.listeners[name]?.size ?? 0;
  }

  clear(): void {
    for (const name of Object.keys(this.listeners)) delete this.listeners[name as keyof Events];
  }
}
