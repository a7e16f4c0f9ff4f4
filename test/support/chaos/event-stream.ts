/** The WHATWG event-stream parser lives with the client SDK; one copy, re-exported for the tests. */
export { EventStreamParser, type StreamEvent } from '../../../src/client/sse-parser.js';
