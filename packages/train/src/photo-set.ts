import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative } from 'node:path';
import { Rng } from '@yoco/common';
import { LabelledSet, readLabelledJsonl } from '@yoco/eval';
import { LocalEmbedder, PROFILES } from '@yoco/models';
import sharp from 'sharp';

/**
 * The photo benchmark, in the spirit of the reference's INRIA Holidays: each
 * photo is an identity, and its augmented views (crop, scale, brightness,
 * JPEG quality, small rotation, flip) are its samples. Only photos that
 * Debian packages and npm packages in the tree install are used, so that an
 * evaluation on photos the project has never seen stays honest; none is
 * committed. Built deterministically: the same installed files and seed give
 * the same views, the same split and the same vectors.
 */
export type PhotoSource = 'opencv-doc' | 'gnome-backgrounds' | 'mate-backgrounds' | 'ukui-wallpapers' | 'visp-images-data' | 'npm-samples';
export const PHOTO_SOURCES: readonly PhotoSource[] = ['opencv-doc', 'gnome-backgrounds', 'mate-backgrounds', 'ukui-wallpapers', 'visp-images-data', 'npm-samples'];

const IMAGE = /\.(jpe?g|png|webp)$/i;
/** Bumped when views or dedup change, so an old cache is not taken for a new set. */
const BUILDER_VERSION = 1;

export interface PhotoSetOptions {
  sources?: readonly PhotoSource[];
  /** Views per identity, the first being the photo itself (default 8). */
  views?: number;
  /** Fractions of identities in train, validation, test (default 0.6, 0.2, 0.2). */
  split?: [number, number, number];
  seed?: number;
  profile?: keyof typeof PROFILES;
  /**
   * At most this many identities (default all): files are taken evenly
   * spaced over each source's sorted list, twice as many as needed, before
   * duplicates are dropped. For a quick set (the tests'); the benchmark uses all.
   */
  maxIdentities?: number;
  /** Where the set is cached (vectors and manifest). */
  dir: string;
  log?: (m: string) => void;
}

export interface PhotoSet {
  train: LabelledSet;
  validation: LabelledSet;
  test: LabelledSet;
  manifest: PhotoSetManifest;
}

export interface PhotoSetManifest {
  key: string;
  profile: string;
  views: number;
  seed: number;
  identities: number;
  /** Files found, and those dropped as duplicates of another (the same picture at another size, say). */
  files: number;
  duplicates: number;
  bySource: Record<string, number>;
  split: { train: number; validation: number; test: number };
  ms: number;
}

/** The image files a source installs (dpkg's list of the package; npm samples from the tree). */
export function sourceFiles(source: PhotoSource): string[] {
  if (source === 'npm-samples') {
    const require = createRequire(import.meta.url);
    let dir: string;
    try {
      dir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
    } catch {
      return [];
    }
    return existsSync(dir) ? readdirSync(dir).filter((f) => IMAGE.test(f)).map((f) => join(dir, f)).sort() : [];
  }
  let listed: string;
  try {
    listed = execFileSync('dpkg', ['-L', source], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  return listed
    .split('\n')
    .filter((f) => IMAGE.test(f) && existsSync(f) && statSync(f).isFile())
    .sort();
}

/** A 16x16 grey thumbnail, zero mean and unit norm: duplicates (other sizes, blurs) correlate near 1. */
async function signature(img: Buffer): Promise<Float32Array> {
  const raw = await sharp(img).resize(16, 16, { fit: 'fill' }).greyscale().raw().toBuffer();
  const v = Float32Array.from(raw);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  let norm = 0;
  for (let i = 0; i < v.length; i++) {
    v[i] -= mean;
    norm += v[i] * v[i];
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < v.length; i++) v[i] /= norm;
  return v;
}

/** A source photo decoded once, upright, at most `size` px, without alpha: what its views are made from. */
export function photoBase(file: string, size = 640): Promise<Buffer> {
  return sharp(file, { limitInputPixels: false }).rotate().resize(size, size, { fit: 'inside', withoutEnlargement: true }).removeAlpha().png().toBuffer();
}

/** One altered view of a photo: every parameter drawn from rng, so a view is reproducible. */
export async function photoView(base: Buffer, rng: Rng): Promise<Buffer> {
  const meta = await sharp(base).metadata();
  const W = meta.width!;
  const H = meta.height!;
  let img = sharp(base);
  // A small rotation, then a crop inside it (no black corners): up to 12 degrees.
  const angle = rng.next() < 0.5 ? (rng.next() * 2 - 1) * 12 : 0;
  if (angle !== 0) img = sharp(await img.rotate(angle, { background: '#000' }).toBuffer());
  const rad = (Math.abs(angle) * Math.PI) / 180;
  const rw = Math.round(W * Math.cos(rad) + H * Math.sin(rad));
  const rh = Math.round(W * Math.sin(rad) + H * Math.cos(rad));
  // The largest axis-aligned box of the original's aspect inside the rotated picture, shrunk by a crop of 60-95% of its area.
  const fit = 1 / (Math.cos(rad) + Math.sin(rad) * Math.max(W / H, H / W));
  const area = 0.6 + rng.next() * 0.35;
  const cw = Math.max(16, Math.floor(W * fit * Math.sqrt(area)));
  const ch = Math.max(16, Math.floor(H * fit * Math.sqrt(area)));
  const left = Math.floor((rw - cw) / 2 + (rng.next() * 2 - 1) * ((W * fit - cw) / 2));
  const top = Math.floor((rh - ch) / 2 + (rng.next() * 2 - 1) * ((H * fit - ch) / 2));
  img = img.extract({ left: Math.max(0, Math.min(rw - cw, left)), top: Math.max(0, Math.min(rh - ch, top)), width: Math.min(cw, rw), height: Math.min(ch, rh) });
  if (rng.next() < 0.5) img = img.flop();
  // Scale: down to 35-90%, the detail a farther camera loses.
  const scale = 0.35 + rng.next() * 0.55;
  img = img.resize(Math.max(16, Math.round(cw * scale)), Math.max(16, Math.round(ch * scale)));
  img = img.modulate({ brightness: 0.7 + rng.next() * 0.6, saturation: 0.8 + rng.next() * 0.4 });
  return img.jpeg({ quality: 25 + Math.floor(rng.next() * 65) }).toBuffer();
}

function setKey(files: string[], o: { views: number; seed: number; profile: string; split: number[]; max?: number }): string {
  const h = createHash('sha256').update(JSON.stringify({ v: BUILDER_VERSION, ...o }));
  for (const f of files) h.update(`${f}:${statSync(f).size}\n`);
  return h.digest('hex').slice(0, 16);
}

function writeJsonl(path: string, set: LabelledSet, views: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(`${path}.tmp`);
    out.on('error', reject);
    for (let i = 0; i < set.count; i++) {
      out.write(`${JSON.stringify({ subject_id: set.subjects[i], view: i % views, vector: Array.from(set.vector(i), (x) => Number(x.toPrecision(9))) })}\n`);
    }
    out.end(() => {
      renameSync(`${path}.tmp`, path);
      resolve();
    });
  });
}

/** Builds the set (or reads it from dir when the same files, seed and views built it before). */
export async function buildPhotoSet(options: PhotoSetOptions): Promise<PhotoSet> {
  const o = { sources: PHOTO_SOURCES, views: 8, split: [0.6, 0.2, 0.2] as [number, number, number], seed: 1, profile: 'resnet50-ms3840' as const, log: () => {}, ...options };
  if (!(Number.isInteger(o.views) && o.views >= 2)) throw new RangeError(`views must be an integer >= 2, got ${o.views}`);
  const started = performance.now();
  const perSource = o.maxIdentities ? Math.ceil((2 * o.maxIdentities) / o.sources.length) : Infinity;
  const spaced = (list: string[]) => (list.length <= perSource ? list : Array.from({ length: perSource }, (_, i) => list[Math.floor((i * list.length) / perSource)]));
  const bySourceFiles = o.sources.map((s) => [s, spaced(sourceFiles(s))] as const);
  const files = bySourceFiles.flatMap(([, f]) => f);
  if (files.length < 10) throw new Error(`only ${files.length} photos installed from ${o.sources.join(', ')}; apt-get install ${o.sources.filter((s) => s !== 'npm-samples').join(' ')}`);
  const key = setKey(files, { views: o.views, seed: o.seed, profile: o.profile, split: o.split, ...(o.maxIdentities ? { max: o.maxIdentities } : {}) });
  const manifestFile = join(o.dir, 'photo-set.json');
  const dim = PROFILES[o.profile].dim;
  if (existsSync(manifestFile)) {
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as PhotoSetManifest;
    if (manifest.key === key) {
      o.log(`photo set ${key}: cached in ${o.dir}`);
      const [train, validation, test] = await Promise.all(['train', 'validation', 'test'].map((part) => readLabelledJsonl(join(o.dir, `${part}.jsonl`))));
      if (train.dim !== dim) throw new Error(`${o.dir}: cached vectors have ${train.dim} values, ${o.profile} gives ${dim}`);
      return { train, validation, test, manifest };
    }
  }
  mkdirSync(o.dir, { recursive: true });
  // Identities: every file, minus duplicates of one already taken (the same picture at another size or blur).
  const taken: { file: string; source: string; base: Buffer; sig: Float32Array }[] = [];
  let duplicates = 0;
  for (const [source, list] of bySourceFiles) {
    for (const file of list) {
      let base: Buffer;
      try {
        base = await photoBase(file);
      } catch {
        continue;
      }
      const meta = await sharp(base).metadata();
      if (meta.width! < 64 || meta.height! < 64) continue;
      const sig = await signature(base);
      if (taken.some((t) => t.sig.reduce((a, x, i) => a + x * sig[i], 0) > 0.97)) {
        duplicates++;
        continue;
      }
      taken.push({ file, source, base, sig });
    }
  }
  if (o.maxIdentities && taken.length > o.maxIdentities) taken.length = o.maxIdentities;
  o.log(`photo set: ${taken.length} identities from ${files.length} files (${duplicates} duplicates dropped); embedding ${taken.length * o.views} views with ${o.profile}`);
  const embedder = await LocalEmbedder.create(o.profile);
  const samples: { subject: string; vector: Float32Array }[] = [];
  try {
    for (let t = 0; t < taken.length; t++) {
      const id = taken[t];
      const rng = new Rng(o.seed * 1_000_003 + t);
      const views: Uint8Array[] = [await sharp(id.base).jpeg({ quality: 90 }).toBuffer()];
      for (let v = 1; v < o.views; v++) views.push(await photoView(id.base, rng));
      const vectors = await embedder.embed(views);
      const subject = `${id.source}:${relative(id.source === 'npm-samples' ? dirname(id.file) : '/usr/share', id.file).replace(extname(id.file), '')}`;
      for (const vector of vectors) samples.push({ subject, vector });
      if ((t + 1) % 20 === 0) o.log(`  ${t + 1}/${taken.length} identities embedded`);
    }
  } finally {
    await embedder.close();
  }
  const all = LabelledSet.of(samples);
  const [train, validation, test] = all.splitBySubjects(o.split, o.seed);
  await writeJsonl(join(o.dir, 'train.jsonl'), train, o.views);
  await writeJsonl(join(o.dir, 'validation.jsonl'), validation, o.views);
  await writeJsonl(join(o.dir, 'test.jsonl'), test, o.views);
  const bySource: Record<string, number> = {};
  for (const t of taken) bySource[t.source] = (bySource[t.source] ?? 0) + 1;
  const manifest: PhotoSetManifest = {
    key,
    profile: o.profile,
    views: o.views,
    seed: o.seed,
    identities: taken.length,
    files: files.length,
    duplicates,
    bySource,
    split: { train: train.subjectIds().length, validation: validation.subjectIds().length, test: test.subjectIds().length },
    ms: Math.round(performance.now() - started),
  };
  writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
  return { train, validation, test, manifest };
}
