import { clientTls, runService, serverSecurity } from '@yoco/service';
import { callerGate } from './caller-auth.js';
import { COORDINATOR_ENV, readCoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';

await runService({
  name: 'coordinator',
  env: COORDINATOR_ENV,
  readConfig: readCoordinatorConfig,
  check: (config) => {
    serverSecurity(config);
    clientTls(config);
    callerGate(config);
  },
  create: (config, logger) => new Coordinator(config, logger),
});
