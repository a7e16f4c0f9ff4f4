// `cluster-key-slot` (the slot function ioredis itself uses) ships no types.
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot of `key` (its `{hash tag}` if it has one). */
  function clusterKeySlot(key: string | Buffer): number;
  export default clusterKeySlot;
}
