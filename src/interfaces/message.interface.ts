/** A message as clients receive it (PROTOCOL.md, "A message"). */
export interface PushletMessage {
  /** Opaque to clients, unique per message; hand it back to resume after this message. */
  readonly id: string;
  /** The topic it was published to; `*` for `publishToAll`. */
  readonly topic: string;
  readonly event: string;
  /** Strings as published; any other JSON value as its JSON text. */
  readonly data: string;
  /** Publication time, ISO 8601 in UTC. */
  readonly timestamp: string;
}
