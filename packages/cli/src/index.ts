export { LocalCluster, stopChild, type LocalClusterOptions, type ProcessInfo } from './local-cluster.js';
export { readVectorFile } from './vector-file.js';
export { loadDemoGallery, demoVector } from './demo-gallery.js';
export { importFile } from './commands/import.js';
