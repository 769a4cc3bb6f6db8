export { REDIS_ENV, redisTarget, SERVICE_ENV, SEAL_ENV, grpcAddressEnv, templateSealer, type RedisConfig, type ServiceBaseConfig, type SealConfig } from './shared-env.js';
export { HEAD_ENV, resolveHead, headFromBytes, type HeadConfig } from './head-env.js';
export { runService, checkConfig, type RunnableService, type ServiceDefinition } from './run-service.js';
export { SERVER_SECURITY_ENV, CLIENT_SECURITY_ENV, serverSecurity, clientTls, peerNameGate, type ServerSecurityConfig, type ClientSecurityConfig } from './transport-env.js';
