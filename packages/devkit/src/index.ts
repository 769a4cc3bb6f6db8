export { LocalCluster, childEnv, stopChild, type LocalClusterOptions, type ProcessInfo } from './local-cluster.js';
export { startRedisServer, startRedisHa, type RedisServerHandle, type RedisServerOptions, type RedisHaHandle } from './redis-server.js';
export { RedisBinaryMissingError } from './errors/index.js';
export { makeLocalPki, makeCa, issueCertificate, mintToken, COORDINATOR_IDENTITY, type LocalPki, type KeyPair } from './local-pki.js';
