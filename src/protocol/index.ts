/**
 * The wire contract, shared by the server and the client SDK. Node-free: nothing here may import
 * a Node module, Nest or `ws`.
 */
export * from './commands.js';
export * from './frames.js';
export * from './ids.js';
export * from './sse.js';
export * from './texts.js';
export * from './topics.js';
