export { Enroller } from './enroller.js';
export { readEnrollerConfig, ENROLLER_ENV, type EnrollerConfig } from './config.js';
