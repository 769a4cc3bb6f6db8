import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The .lua sources sit in src/scripts (dist/ is beside src/ in the package). */
const DIR = fileURLToPath(new URL('../src/scripts/', import.meta.url));

/**
 * A script's text with its `--- @include "name"` lines replaced by
 * scripts/includes/name.lua, each included once (BullMQ's commands are laid
 * out the same way), so the pieces PUT and DEL share are written once.
 */
export function loadScript(name: string): string {
  const included = new Set<string>();
  const expand = (text: string): string =>
    text.replace(/^--- @include "([\w-]+)"$/gm, (_, inc: string) => {
      if (included.has(inc)) return '';
      included.add(inc);
      return expand(readFileSync(`${DIR}includes/${inc}.lua`, 'utf8'));
    });
  return expand(readFileSync(`${DIR}${name}.lua`, 'utf8'));
}
