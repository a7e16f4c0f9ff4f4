import type { EventEmitter } from 'node:events';

/** Resolves once `stream` drains its write buffer or closes, whichever comes first. */
export function drained(stream: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
