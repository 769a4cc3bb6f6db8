/**
 * Whether ONNX Runtime really runs where ORT_PROVIDERS says. onnxruntime-node
 * falls back to CPU without a word when a provider's libraries load but its
 * device cannot take the graph, and the CPU-only npm package cannot load the
 * CUDA provider at all. A probe of the scan's own graph is run once with
 * profiling on; the profile names the provider every node ran on.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '@yoco/onnx';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { ProviderError } from './errors/index.js';

/** ORT_PROVIDERS names to the names ORT's profile uses. */
const PROFILE_NAMES: Record<string, string> = {
  cpu: 'CPUExecutionProvider',
  cuda: 'CUDAExecutionProvider',
  tensorrt: 'TensorrtExecutionProvider',
  dml: 'DmlExecutionProvider',
  coreml: 'CoreMLExecutionProvider',
  webgpu: 'WebGpuExecutionProvider',
};

/** One node of ORT's profile: what ran, and where. */
export interface NodePlacement {
  op: string;
  provider: string;
}

/** relu(P + u) · w over 64 rows with P an initializer: the resident scan's graph, in small. */
function probeModel(): Uint8Array {
  const H = 16;
  const g = new GraphBuilder('provider_probe');
  const u = g.input('u', [1, H]);
  const p = g.initializer('p', Float32Array.from({ length: 64 * H }, (_, i) => ((i % 7) - 3) / 7), [64, H]);
  const relu = g.op('Relu', [g.op('Add', [p, u])]);
  g.output(g.op('MatMul', [relu, g.initializer('w', new Float32Array(H).fill(0.5), [H, 1])], {}, { output: 'y' }), [64, 1]);
  return g.toBytes({ opset: 17 });
}

/** Where each node of a profiled run went (ORT's profile JSON: node events carry op_name and provider). */
export function placementsOf(profile: unknown): NodePlacement[] {
  if (!Array.isArray(profile)) return [];
  const out: NodePlacement[] = [];
  for (const e of profile as { cat?: string; args?: { op_name?: string; provider?: string } }[]) {
    if (e.cat === 'Node' && e.args?.provider && e.args.op_name) out.push({ op: e.args.op_name, provider: e.args.provider });
  }
  return out;
}

/** '' when every node ran on the first provider asked for (other than cpu), else what ran elsewhere. */
export function misplaced(placements: NodePlacement[], providers: string[]): string {
  const wanted = providers.find((p) => p !== 'cpu');
  if (!wanted) return '';
  const name = PROFILE_NAMES[wanted] ?? wanted;
  if (placements.length === 0) return `no node of the probe was profiled`;
  const elsewhere = placements.filter((p) => p.provider !== name);
  return elsewhere.length === 0 ? '' : `${elsewhere.map((p) => `${p.op} ran on ${p.provider}`).join(', ')}, not on ${name}`;
}

/**
 * Throws ProviderError unless ORT runs the scan's graph on the first
 * non-CPU provider in `providers` (nothing to check when only cpu is asked for).
 */
export async function assertProviders(providers: string[]): Promise<void> {
  const wanted = providers.find((p) => p !== 'cpu');
  if (!wanted) return;
  const dir = mkdtempSync(join(tmpdir(), 'yoco-ort-probe-'));
  let session: InferenceSession;
  try {
    try {
      session = await InferenceSession.create(probeModel(), { executionProviders: [...providers.filter((p) => p !== 'cpu'), 'cpu'], enableProfiling: true, profileFilePrefix: join(dir, 'probe'), logSeverityLevel: 3 });
    } catch (err) {
      throw new ProviderError(`ORT_PROVIDERS asks for ${wanted}, which this onnxruntime-node cannot load (${(err as Error).message}); the CPU npm package has no ${wanted} libraries: run the CUDA image (deploy/Dockerfile.cuda), or leave ORT_PROVIDERS empty for CPU`);
    }
    await session.run({ u: new Tensor('float32', new Float32Array(16).fill(0.1), [1, 16]) });
    session.endProfiling();
    await session.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    const why = misplaced(file ? placementsOf(JSON.parse(readFileSync(join(dir, file), 'utf8'))) : [], providers);
    if (why) throw new ProviderError(`ORT_PROVIDERS asks for ${wanted}, but ONNX Runtime fell back: ${why}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
