import { runService } from '@yoco/service';
import { readCoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';

await runService({ name: 'coordinator', readConfig: readCoordinatorConfig, create: (config, logger) => new Coordinator(config, logger) });
