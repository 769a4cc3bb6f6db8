export { LocalCluster, childEnv, stopChild, type LocalClusterOptions, type ProcessInfo } from './local-cluster.js';
export { startRedisServer, type RedisServerHandle, type RedisServerOptions } from './redis-server.js';
export { RedisBinaryMissingError } from './errors/index.js';
export { makeLocalPki, makeCa, issueCertificate, mintToken, COORDINATOR_IDENTITY, type LocalPki, type KeyPair } from './local-pki.js';
