import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TemplateRecordError } from './errors/index.js';

/**
 * Keys templates are sealed with at rest: AES-256-GCM (node:crypto), one
 * current key that seals, older ones that still open. The file is JSON:
 *   {"current": "k2", "keys": {"k1": "<32 bytes, base64>", "k2": "..."}}
 * (a Kubernetes Secret mounted as a file). Rotation: add a key, make it
 * current; the enroller re-seals every record in the background, and the old
 * key can be dropped once none is left under it.
 */
export class TemplateSealer {
  readonly current: string;
  private readonly keys: Map<string, Buffer>;

  constructor(keys: Map<string, Buffer>, current: string) {
    if (!keys.has(current)) throw new RangeError(`the current key '${current}' is not among the keys`);
    for (const [id, key] of keys) {
      if (key.length !== 32) throw new RangeError(`key '${id}' is ${key.length} bytes; AES-256 needs 32`);
      if (!/^[\w.-]{1,64}$/.test(id)) throw new RangeError(`key id '${id}' must be 1-64 letters, digits, '.', '_' or '-'`);
    }
    this.keys = keys;
    this.current = current;
  }

  static fromFile(path: string): TemplateSealer {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { current?: string; keys?: Record<string, string> };
    if (!doc.current || !doc.keys) throw new RangeError(`${path}: expected {"current": ID, "keys": {ID: base64 key}}`);
    return new TemplateSealer(new Map(Object.entries(doc.keys).map(([id, b64]) => [id, Buffer.from(b64, 'base64')])), doc.current);
  }

  /** [key id length u8][key id][iv 12][tag 16][ciphertext]; the template id is the associated data, so a record cannot be moved to another id. */
  seal(templateId: string, plain: Buffer): Buffer {
    const kid = Buffer.from(this.current, 'utf8');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.current)!, iv);
    cipher.setAAD(Buffer.from(templateId, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.from([kid.length]), kid, iv, cipher.getAuthTag(), body]);
  }

  /** The key id a sealed body was sealed with. */
  static keyIdOf(sealed: Buffer): string {
    return sealed.toString('utf8', 1, 1 + sealed[0]);
  }

  open(templateId: string, sealed: Buffer): Buffer {
    if (sealed.length < 1 + sealed[0] + 28) throw new TemplateRecordError(templateId, 'truncated sealed record');
    const kid = TemplateSealer.keyIdOf(sealed);
    const key = this.keys.get(kid);
    if (!key) throw new TemplateRecordError(templateId, `sealed under key '${kid}', which TEMPLATE_KEYS_FILE does not hold`);
    const at = 1 + sealed[0];
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(at, at + 12));
    decipher.setAAD(Buffer.from(templateId, 'utf8'));
    decipher.setAuthTag(sealed.subarray(at + 12, at + 28));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(at + 28)), decipher.final()]);
    } catch {
      throw new TemplateRecordError(templateId, `sealed record fails authentication under key '${kid}' (altered, or moved from another id)`);
    }
  }
}
