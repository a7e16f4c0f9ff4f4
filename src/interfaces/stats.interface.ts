/** A snapshot of what one instance is doing (`PushletService.stats()`). */
export interface PushletStats {
  readonly connections: {
    readonly sse: number;
    readonly ws: number;
    readonly total: number;
  };
  /** Topics with at least one local subscriber. */
  readonly topics: number;
  /** Local subscriptions (a connection on three topics counts three, plus one for broadcasts). */
  readonly subscribers: number;
  /** Messages published through this instance. */
  readonly published: number;
  /** Clients disconnected because their outgoing buffer overflowed. */
  readonly slowConsumersDisconnected: number;
  readonly heartbeatInterval: number;
}
