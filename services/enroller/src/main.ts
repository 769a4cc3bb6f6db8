import { runService, templateSealer } from '@yoco/service';
import { ENROLLER_ENV, readEnrollerConfig } from './config.js';
import { Enroller } from './enroller.js';

await runService({ name: 'enroller', env: ENROLLER_ENV, readConfig: readEnrollerConfig, check: (config) => void templateSealer(config), create: (config, logger) => new Enroller(config, logger) });
