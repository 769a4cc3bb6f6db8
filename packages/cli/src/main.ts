import { audit } from './commands/audit.js';
import { localCluster } from './cluster-file.js';
import { parseArgs } from 'node:util';
import { YocoError, getErrorMessage } from '@yoco/common';
import { isServiceError, Status, statusName } from '@yoco/rpc';
import { enrolBulk, enrolOne, listFailedJobs, removeOne } from './commands/enrol.js';
import { identify, subject, verify } from './commands/identify.js';
import { importFile } from './commands/import.js';
import { status } from './commands/status.js';
import { reshard, rolloutHead } from './commands/reshard.js';
import { up } from './commands/up.js';
import { backup, restore } from './commands/backup.js';

const HELP = `yoco <command> [options]

  up                         start Redis, the shards and the coordinator (what npm start runs)
  import FILE [--json]       bulk-load subjects from JSON Lines {"subject_id", "vector"|"vectors"}
      --concurrency N        Import calls in flight (default 4); through the Matcher, ordered
                             with every enrolment and removal (a removed subject stays removed)
  enrol SUBJECT [--image F ...] [--vector-file F ...] [--replace] [--wait]
                             enrol one subject through the queue (images are embedded by the cluster)
  enrol --bulk FILE|DIR      enrol many: JSON Lines {"subject_id", "vector(s)" | "image(s)": paths},
      --concurrency N --wait or a directory of one .json per subject and/or one folder of photos
      --failures FILE        per subject (named after it); resumable: subjects already enrolled with
                             the same vectors are skipped; every rejected record goes to FILE
  remove SUBJECT [--wait] [--verify]
                             remove a subject everywhere; --verify waits and prints a receipt from every replica
  jobs --failed [--json]     list failed enrolment jobs
  identify IMAGE             identify a photo (JPEG, PNG, WebP), embedded by the cluster
  identify --vector-file F   identify a vector (JSON array, or raw float32 .f32/.bin)
           [--top-k N] [--threshold T] [--allow-partial] [--consistency-token T] [--json]
  verify SUBJECT IMAGE | --image F | --vector-file F
                             1:1: does the probe match SUBJECT? (exit 0 yes, 1 no)
  subject SUBJECT            a subject's template ids, slot and shard
      --top-k N --threshold T --json
  status [--json]            topology and health of every shard
  reshard --shards K [--wait]
                             change the shard count online (admin): the new epoch's shards load beside
                             the serving ones, and Identify switches once they are ready; --wait returns
                             once it has and the shards beyond K are stopped or released
  reshard --abort            drop the change in progress; the serving epoch is untouched
  rollout-head FILE [--wait] roll out another head (ONNX, admin): every shard computes its rows with it
                             beside the serving ones; Identify switches once all are ready
  backup FILE [--redis URL]  a point-in-time copy of the store in one checked file (enrolments wait
                             while it is taken; Identify does not); Redis: --redis, REDIS_URL or
                             REDIS_SENTINELS, else the one npm start runs
  restore FILE [--removal-log DIR ...] [--redis URL]
                             put a backup back, then re-apply every removal made after it (from the
                             store's removal log and REMOVAL_LOG_DIR files): nobody removed comes back
  audit [--subject S] [--since T] [--decisions] [--json]
                             audit records, newest first (admin token); T: epoch ms, ISO date, or 30m / 24h / 7d

  train --data D --out HEAD.onnx
                             train the conv Siamese head on labelled data (yoco train --help)
  eval --data D [--head H ...]
                             1:1 FNMR at FMR and 1:N FNIR at FPIR, with counts, intervals and plots (yoco eval --help)
  calibrate --fpir F --impostors D
                             the threshold that holds FPIR F at the gallery's size (yoco calibrate --help)

  --json                     machine-readable output (every command but up)
  --address host:port        the Matcher (default YOCO_ADDRESS or 127.0.0.1:50051)
  --ca-file FILE             TLS: the CA of the Matcher's certificate (default YOCO_CA_FILE)
  --token JWT                the bearer token sent on every call (default YOCO_TOKEN)
`;

const DATA_HELP = `  D is JSON Lines of {"subject_id", "vector"} (or "vectors": several samples), or a directory
  with one folder of images per subject (embedded here with --profile's model).
  --profile P                resnet50-ms3840 (default) or face-resnet128: the model images are embedded
                             with, and whose metric head is the starting / reference head`;

const COMMAND_HELP: Record<string, string> = {
  train: `yoco train --data D --out HEAD.onnx [options]

Trains the conv Siamese head (C1 with H kernels, ReLU, dropout 0.5, C2, sigmoid; binary
cross-entropy; Adam) on labelled data, starting from the profile's metric head (or --init), and
writes it as a conv-form ONNX head that YOCO_HEAD_PATH / yoco rollout-head take. Each step
takes every positive pair among S subjects x K samples and as many negatives (half the hardest
the head sees, half random); validation is split by subject; training stops early when the
validation loss stops improving, and the best epoch's head is written.

${DATA_HELP}
  --validation D             validation data (default: 20% of --data's subjects)
  --init HEAD.onnx           start from this head instead of the metric head
  --hidden H                 hidden units of the metric head started from (even)
  --epochs N                 at most N epochs (default 30)
  --patience N               stop after N epochs without a better validation loss (default 4)
  --learning-rate R          relative step (default 0.05): one step moves C1's outputs by about R of their size
  --seed S                   the split, the pairs and dropout (default 1)
  --json                     the summary and every epoch's validation as JSON
`,
  eval: `yoco eval --data D [--head HEAD.onnx | --head metric ...] [--out DIR]

Error rates of a head on labelled data, in process, through the engine the shards run:
  1:1  every ordered pair of samples: FNMR at FMR 1e-2, 1e-3, 1e-4, and the pair accuracy at 0.5;
  1:N  open set (NIST FRVT/FRTE style): --enrol-fraction of the subjects (default 0.5) enrolled
       with their first sample; their other samples are mated searches, every sample of the
       others a non-mated one: FNIR at FPIR 1e-2 and 1e-3, rank-1 and rank-5.
Every rate comes with its count and a 95% Clopper-Pearson interval; a rate the set is too small
for (fewer than 3/rate trials) is reported as not measurable. Writes DIR/report.json,
det.png, roc.png (every head on one plot) and histogram.png (the first head's scores).

${DATA_HELP}
  --head H                   a head file, or 'metric' (default); give several to compare them
  --out DIR                  where the report and plots go (default yoco-eval)
  --enrol-fraction F         share of subjects enrolled for the 1:N searches (default 0.5)
  --gallery D                the enrolled templates instead: every sample of --data searches them
  --fmr R,R                  the FMR targets of the 1:1 report (default 0.01,0.001,0.0001)
  --fpir R,R                 the FPIR targets of the 1:N report (default 0.01,0.001)
  --cluster                  through the running cluster at --address instead: images go to its
                             embedder, scores come from its shards. The set's subjects it holds are
                             the enrolled ones (search with other samples than those enrolled):
                             1:N from Identify at the cluster's gallery size, 1:1 from Verify
                             (each mated sample against its subject, each sample against
                             --impostor-pairs other enrolled subjects, default 10)
  --address HOST:PORT        with --cluster (default YOCO_ADDRESS or the local npm start)
  --json                     the reports as JSON (without curves and histograms)
`,
  calibrate: `yoco calibrate --fpir F --impostors D [--gallery-size N] [--out FILE]

Picks the threshold from 1:N searches of people who are NOT enrolled: each search's top score is
what an impostor at a gate would be accepted with, so FPIR(t) is the share of those at or above t
(not a pair FMR: at N enrolled, one search is N comparisons). By default the searches run against
the running cluster (Identify, images embedded by its embedder), at its gallery size; with
--gallery they run here against that file's vectors. For another gallery size N the threshold
is set where 1 - (1 - FPIR_searched)^(N/searched) = F (the best of N/searched independent
searches), which the output marks as extrapolated.

The result is written to --out, or, against a local npm start, to its THRESHOLD_FILE
(<data dir>/threshold.json), which the coordinator re-reads within a second: ClusterStatus then
shows the threshold with the file, date, FPIR and gallery size.

  --fpir F                   the false-positive identification rate to hold, e.g. 0.001
  --impostors D              JSON Lines of vectors, or a folder of images per subject, of people not enrolled
  --gallery-size N           the gallery size to hold it at (default: the one searched)
  --gallery FILE             in-process: the gallery's vectors (JSON Lines), searched with --head
  --head HEAD.onnx           with --gallery: the head (default the profile's metric head)
  --concurrency N            Identify calls in flight (default 8)
  --json                     the calibration as JSON
`,
};

/** An integer option, checked: '--top-k abc' is an error, not 10. */
function intOption(name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`--${name} '${raw}' is not a whole number from ${min} to ${max}`);
  return Number(raw);
}

function numberOption(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} '${raw}' is not a number from ${min} to ${max}`);
  return n;
}

/** The probe of identify / verify: a positional image, --image, or --vector-file (exactly one). */
function probeSource(positional: string | undefined, images: string[] | undefined, vectorFiles: string[] | undefined): { image?: string; vectorFile?: string } {
  const all = [...(positional ? [{ image: positional }] : []), ...(images ?? []).map((image) => ({ image })), ...(vectorFiles ?? []).map((vectorFile) => ({ vectorFile }))];
  if (all.length !== 1) throw new Error(all.length === 0 ? 'give the probe: an image file, --image F or --vector-file F' : 'give one probe only');
  return all[0];
}

function profileOption(raw: string): 'resnet50-ms3840' | 'face-resnet128' {
  if (raw !== 'resnet50-ms3840' && raw !== 'face-resnet128') throw new Error(`--profile '${raw}' is not resnet50-ms3840 or face-resnet128`);
  return raw;
}

/** The Matcher this run talks to (for the 'no Matcher at' message). */
let address = '';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      // Default: YOCO_ADDRESS, else the cluster `npm start` runs here (its cluster.json), else 127.0.0.1:50051.
      address: { type: 'string', default: process.env.YOCO_ADDRESS || localCluster()?.matcher || '127.0.0.1:50051' },
      'vector-file': { type: 'string', multiple: true },
      image: { type: 'string', multiple: true },
      'allow-partial': { type: 'boolean', default: false },
      'consistency-token': { type: 'string' },
      bulk: { type: 'string' },
      replace: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      failed: { type: 'boolean', default: false },
      'top-k': { type: 'string', default: '10' },
      threshold: { type: 'string', default: '0' },
      concurrency: { type: 'string' },
      json: { type: 'boolean', default: false },
      'ca-file': { type: 'string' },
      subject: { type: 'string' },
      since: { type: 'string' },
      decisions: { type: 'boolean', default: false },
      verify: { type: 'boolean', default: false },
      failures: { type: 'string' },
      limit: { type: 'string', default: '100' },
      shards: { type: 'string' },
      abort: { type: 'boolean', default: false },
      token: { type: 'string' },
      redis: { type: 'string' },
      'removal-log': { type: 'string', multiple: true },
      data: { type: 'string' },
      validation: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string', default: 'resnet50-ms3840' },
      init: { type: 'string' },
      hidden: { type: 'string' },
      epochs: { type: 'string' },
      patience: { type: 'string' },
      'learning-rate': { type: 'string' },
      seed: { type: 'string' },
      head: { type: 'string', multiple: true },
      'enrol-fraction': { type: 'string' },
      cluster: { type: 'boolean', default: false },
      'impostor-pairs': { type: 'string' },
      fpir: { type: 'string' },
      fmr: { type: 'string' },
      impostors: { type: 'string' },
      'gallery-size': { type: 'string' },
      gallery: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  address = values.address!;
  // The flags win over the environment; the Matcher client reads both from there.
  if (values['ca-file']) process.env.YOCO_CA_FILE = values['ca-file'];
  if (values.token) process.env.YOCO_TOKEN = values.token;
  if (values.help && command && COMMAND_HELP[command]) {
    console.log(COMMAND_HELP[command]);
    return 0;
  }
  if (values.help || !command) {
    console.log(HELP);
    return command || values.help ? 0 : 2;
  }
  switch (command) {
    case 'up':
      await up();
      return -1;
    case 'backup':
      if (!rest[0]) throw new Error('give the file to write: yoco backup FILE');
      await backup(rest[0], { redis: values.redis, json: values.json });
      return 0;
    case 'restore':
      if (!rest[0]) throw new Error('give the backup file: yoco restore FILE');
      await restore(rest[0], values['removal-log'] ?? [], { redis: values.redis, json: values.json });
      return 0;
    case 'identify': {
      const source = probeSource(rest[0], values.image, values['vector-file']);
      await identify(values.address!, source, { topK: intOption('top-k', values['top-k']!, 1, 1000), threshold: numberOption('threshold', values.threshold!, 0, 1), allowPartial: values['allow-partial']!, consistencyToken: values['consistency-token'] ?? '', json: values.json! });
      return 0;
    }
    case 'verify': {
      if (!rest[0]) throw new Error('verify needs SUBJECT, then an image file, --image F or --vector-file F');
      const source = probeSource(rest[1], values.image, values['vector-file']);
      return (await verify(values.address!, rest[0], source, { threshold: numberOption('threshold', values.threshold!, 0, 1), consistencyToken: values['consistency-token'] ?? '', json: values.json! })) ? 0 : 1;
    }
    case 'subject':
      if (!rest[0]) throw new Error('subject needs SUBJECT');
      await subject(values.address!, rest[0], values.json!);
      return 0;
    case 'enrol': {
      const options = { address: values.address!, replace: values.replace!, wait: values.wait!, json: values.json! };
      if (values.bulk) return (await enrolBulk(values.bulk, { ...options, concurrency: intOption('concurrency', values.concurrency ?? '16', 1, 256), failures: values.failures, json: values.json! })) > 0 ? 1 : 0;
      const images = [...(values.image ?? []), ...rest.slice(1)];
      if (!rest[0] || (images.length === 0 && !values['vector-file']?.length)) throw new Error('enrol needs SUBJECT and --image F (one or more), --vector-file F, or --bulk FILE|DIR');
      await enrolOne(rest[0], { images, vectorFiles: values['vector-file'] ?? [] }, options);
      return 0;
    }
    case 'remove':
      if (!rest[0]) throw new Error('remove needs SUBJECT');
      return (await removeOne(rest[0], { address: values.address!, replace: false, wait: values.wait!, verify: values.verify!, json: values.json! })) ? 0 : 1;
    case 'jobs':
      await listFailedJobs(values.address!, values.json!);
      return 0;
    case 'status':
      await status(values.address!, values.json!);
      return 0;
    case 'reshard':
      if (!values.abort && !values.shards) throw new Error('reshard needs --shards K (or --abort)');
      await reshard(values.address!, values.abort ? 0 : intOption('shards', values.shards!, 1, 4096), { wait: values.wait!, abort: values.abort!, json: values.json! });
      return 0;
    case 'rollout-head':
      if (!rest[0]) throw new Error('rollout-head needs FILE (the head, as ONNX)');
      await rolloutHead(values.address!, rest[0], { wait: values.wait!, abort: false, json: values.json! });
      return 0;
    case 'audit':
      await audit(values.address!, { subject: values.subject, since: values.since, decisions: values.decisions!, json: values.json!, limit: Number(values.limit) });
      return 0;
    case 'train': {
      if (!values.data || !values.out) throw new Error('train needs --data D and --out HEAD.onnx (yoco train --help)');
      const { train } = await import('./commands/train.js');
      const opt = (name: string, v: string | undefined, min: number, max: number) => (v === undefined ? undefined : intOption(name, v, min, max));
      await train({
        data: values.data,
        validation: values.validation,
        out: values.out,
        profile: profileOption(values.profile!),
        init: values.init,
        hidden: opt('hidden', values.hidden, 2, 65536),
        epochs: opt('epochs', values.epochs, 1, 10_000),
        patience: opt('patience', values.patience, 1, 10_000),
        learningRate: values['learning-rate'] === undefined ? undefined : numberOption('learning-rate', values['learning-rate'], 1e-9, 10),
        seed: opt('seed', values.seed, 0, 2 ** 31),
        json: values.json!,
      });
      return 0;
    }
    case 'eval': {
      if (!values.data) throw new Error('eval needs --data D (yoco eval --help)');
      const { evalCommand } = await import('./commands/eval.js');
      const rates = (name: string, raw: string | undefined) => (raw === undefined ? undefined : raw.split(',').map((r) => numberOption(name, r.trim(), 1e-9, 0.5)));
      await evalCommand({
        data: values.data,
        heads: values.head ?? [],
        profile: profileOption(values.profile!),
        out: values.out ?? 'yoco-eval',
        enrolFraction: values['enrol-fraction'] === undefined ? undefined : numberOption('enrol-fraction', values['enrol-fraction'], 0.01, 0.99),
        gallery: values.gallery,
        fmr: rates('fmr', values.fmr),
        fpir: rates('fpir', values.fpir),
        cluster: values.cluster ? { address: values.address!, impostorPairs: intOption('impostor-pairs', values['impostor-pairs'] ?? '10', 0, 10_000), concurrency: intOption('concurrency', values.concurrency ?? '8', 1, 256) } : undefined,
        json: values.json!,
      });
      return 0;
    }
    case 'calibrate': {
      if (!values.fpir || !values.impostors) throw new Error('calibrate needs --fpir F and --impostors D (yoco calibrate --help)');
      const { calibrate } = await import('./commands/calibrate.js');
      await calibrate({
        address: values.address!,
        fpir: numberOption('fpir', values.fpir, 1e-9, 0.5),
        impostors: values.impostors,
        gallerySize: values['gallery-size'] === undefined ? undefined : intOption('gallery-size', values['gallery-size'], 1, 1e12),
        out: values.out,
        gallery: values.gallery,
        head: values.head?.[0],
        profile: profileOption(values.profile!),
        concurrency: intOption('concurrency', values.concurrency ?? '8', 1, 256),
        json: values.json!,
      });
      return 0;
    }
    case 'import': {
      if (!rest[0]) throw new Error('import needs a FILE');
      const [, failed] = await importFile(rest[0], { address: values.address!, concurrency: intOption('concurrency', values.concurrency ?? '4', 1, 64), failures: values.failures, json: values.json! });
      return failed > 0 ? 1 : 0;
    }
    default:
      console.error(`unknown command '${command}'\n\n${HELP}`);
      return 2;
  }
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (isServiceError(err) && err.code === Status.UNAVAILABLE && /No connection established|ECONNREFUSED|ENOTFOUND|Name resolution failed/.test(err.details)) {
      console.error(`error: no Matcher at ${address}; is \`npm start\` running? (${err.details.split('.')[0]})`);
    } else if (isServiceError(err)) console.error(`error: ${statusName(err.code)}: ${err.details}`);
    else if (err instanceof YocoError) console.error(`error: ${err.message}`);
    else console.error(`error: ${getErrorMessage(err)}`);
    process.exit(1);
  },
);
