#!/usr/bin/env node
// Built by `npm run build` (tsc -b); `npm start` and `npm test` build first.
import('../dist/main.js');
