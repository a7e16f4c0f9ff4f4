import { CLOSE_CODES, EVENTS, type Notice } from '../protocol/frames.js';
import { MESSAGES } from '../pushlet.messages.js';

/** Why the server ends a session. */
export type SessionEndReason = 'shutdown' | 'slow' | 'error' | 'expired' | 'disconnected';

/** How an end reason goes on the wire, for every transport. */
export interface SessionEndWire {
  /** The last notice, written before the end when the session has started (`pushlet:expired`, `pushlet:disconnected`). */
  readonly notice: Notice | undefined;
  /** The WebSocket close code and reason. */
  readonly closeCode: number;
  readonly text: string;
  /** Whether the end says why (shutdown, or a last notice): an SSE stream then ends gracefully, else it is cut. */
  readonly graceful: boolean;
}

/**
 * The one table of end reasons → wire: the session writes the notice, the WebSocket closes with
 * the code, the SSE stream ends gracefully or is cut. `detail`: the reason given to `disconnect()`.
 */
export function sessionEndWire(reason: SessionEndReason, detail?: string): SessionEndWire {
  switch (reason) {
    case 'shutdown':
      return { notice: undefined, closeCode: CLOSE_CODES.goingAway, text: MESSAGES.shuttingDown, graceful: true };
    case 'slow':
      return { notice: undefined, closeCode: CLOSE_CODES.tryAgainLater, text: MESSAGES.slowConsumer, graceful: false };
    case 'expired':
      return {
        notice: { event: EVENTS.expired, data: MESSAGES.identityExpired },
        closeCode: CLOSE_CODES.identityExpired,
        text: MESSAGES.identityExpired,
        graceful: true,
      };
    case 'disconnected': {
      const text = detail ?? MESSAGES.disconnected;
      return { notice: { event: EVENTS.disconnected, data: text }, closeCode: CLOSE_CODES.disconnected, text, graceful: true };
    }
    case 'error':
      return { notice: undefined, closeCode: CLOSE_CODES.internalError, text: MESSAGES.wsInternalError, graceful: false };
  }
}
