export type { PushletMessage } from '../protocol/frames.js';
