export { readVectorFile } from './vector-file.js';
export { enrolDemoGallery, enrolDemoPhotos, alteredCopy, demoVector, DEMO_PHOTOS } from './demo-gallery.js';
export { bulkEnrol, waitForJobs, type EnrolRecord, type BulkSummary } from './bulk-enrol.js';
export { readRecords } from './records.js';
export { importFile } from './commands/import.js';
export { UP_REDIS, redactUrl } from './commands/up.js';
export { parseSince } from './commands/audit.js';
