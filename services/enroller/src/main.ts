import { runService } from '@yoco/service';
import { readEnrollerConfig } from './config.js';
import { Enroller } from './enroller.js';

await runService({ name: 'enroller', readConfig: readEnrollerConfig, create: (config, logger) => new Enroller(config, logger) });
