import { createHash } from 'node:crypto';
import { assertVectors, f32FromBytes, f32leBytes, getErrorMessage } from '@yoco/common';
import { TemplateRecordError } from './errors/index.js';
import { TemplateSealer } from './template-sealer.js';

/** One enrolled image's vector, owned by a subject. */
export interface Template {
  subjectId: string;
  templateId: string;
  vector: Float32Array;
}

const VERSION = 1;

/**
 * Stable template id: a digest of the subject and the vector's bytes. A retried
 * enrolment job recomputes the same ids, so it can never add duplicates.
 */
export function templateIdOf(subjectId: string, vector: Float32Array): string {
  const h = createHash('sha256');
  h.update(subjectId, 'utf8');
  h.update(Buffer.from([0]));
  h.update(Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength));
  return h.digest('hex').slice(0, 20);
}

const SEALED = 2;

/**
 * Version 1: [1][subject length u16 LE][subject UTF-8][vector: the f32le bytes of the vector codec].
 * Version 2, sealed at rest: [2][the version 1 body (without its version byte), sealed by TemplateSealer].
 */
export function encodeTemplate(subjectId: string, vector: Float32Array, sealer?: TemplateSealer, templateId = templateIdOf(subjectId, vector)): Buffer {
  const subject = Buffer.from(subjectId, 'utf8');
  const out = Buffer.allocUnsafe(3 + subject.length + vector.length * 4);
  out.writeUInt8(VERSION, 0);
  out.writeUInt16LE(subject.length, 1);
  subject.copy(out, 3);
  f32leBytes(vector).copy(out, 3 + subject.length);
  if (!sealer) return out;
  return Buffer.concat([Buffer.from([SEALED]), sealer.seal(templateId, out.subarray(1))]);
}

/** The key a record is sealed under ('' for a plain record). */
export function recordKeyId(bytes: Buffer): string {
  return bytes.length > 1 && bytes[0] === SEALED ? TemplateSealer.keyIdOf(bytes.subarray(1)) : '';
}

export function decodeTemplate(templateId: string, bytes: Buffer, sealer?: TemplateSealer): Template {
  if (bytes.length >= 1 && bytes[0] === SEALED) {
    if (!sealer) throw new TemplateRecordError(templateId, 'the record is sealed and no TEMPLATE_KEYS_FILE is set');
    return decodePlain(templateId, sealer.open(templateId, bytes.subarray(1)), 0);
  }
  if (bytes.length < 3 || bytes.readUInt8(0) !== VERSION) throw new TemplateRecordError(templateId, 'unknown record format');
  return decodePlain(templateId, bytes, 1);
}

/** [subject length u16 LE][subject][vector] starting at `at`. */
function decodePlain(templateId: string, bytes: Buffer, at: number): Template {
  if (bytes.length < at + 2) throw new TemplateRecordError(templateId, 'truncated subject id');
  const len = bytes.readUInt16LE(at);
  const body = at + 2 + len;
  if (body > bytes.length) throw new TemplateRecordError(templateId, 'truncated subject id');
  const subjectId = bytes.toString('utf8', at + 2, body);
  if ((bytes.length - body) % 4 !== 0) throw new TemplateRecordError(templateId, 'truncated vector');
  return { subjectId, templateId, vector: f32FromBytes(bytes.subarray(body)) };
}

/** Decodes and checks a record against the store's width: a template a shard can hold, or TemplateRecordError. */
export function decodeCheckedTemplate(templateId: string, bytes: Buffer, dim: number, sealer?: TemplateSealer): Template {
  const t = decodeTemplate(templateId, bytes, sealer);
  try {
    assertVectors(t.vector, dim, 'vector', 1);
  } catch (err) {
    throw new TemplateRecordError(templateId, getErrorMessage(err));
  }
  return t;
}
