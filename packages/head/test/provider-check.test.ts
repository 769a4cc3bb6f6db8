import { assertProviders, misplaced, placementsOf, ProviderError } from '@yoco/head';
import { describe, expect, it } from 'vitest';

describe('the execution-provider check', () => {
  it("reads where each node ran from ORT's profile, and names what fell back", () => {
    const profile = [
      { cat: 'Session', name: 'model_run', args: {} },
      { cat: 'Node', name: 'Add_kernel_time', args: { op_name: 'Add', provider: 'CUDAExecutionProvider' } },
      { cat: 'Node', name: 'MatMul_kernel_time', args: { op_name: 'MatMul', provider: 'CPUExecutionProvider' } },
    ];
    const placements = placementsOf(profile);
    expect(placements).toEqual([{ op: 'Add', provider: 'CUDAExecutionProvider' }, { op: 'MatMul', provider: 'CPUExecutionProvider' }]);
    expect(misplaced(placements, ['cuda', 'cpu'])).toBe('MatMul ran on CPUExecutionProvider, not on CUDAExecutionProvider');
    expect(misplaced(placements.slice(0, 1), ['cuda'])).toBe('');
    expect(misplaced(placements, ['cpu'])).toBe('');
    expect(misplaced([], ['cuda'])).toBe('no node of the probe was profiled');
  });

  it('passes for the CPU, and refuses a provider this onnxruntime-node cannot run, with the reason', async () => {
    await expect(assertProviders([])).resolves.toBeUndefined();
    await expect(assertProviders(['cpu'])).resolves.toBeUndefined();
    // The CPU npm package has no CUDA libraries (on a CUDA image this is the GPU test's job).
    const err = await assertProviders(['cuda', 'cpu']).catch((e: unknown) => e);
    if (err === undefined) return;
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).code).toBe('EXECUTION_PROVIDER');
    expect((err as Error).message).toMatch(/ORT_PROVIDERS asks for cuda, (which this onnxruntime-node cannot load|but ONNX Runtime fell back)/);
  });
});
