export { InsecureBindError } from './insecure-bind-error.js';
