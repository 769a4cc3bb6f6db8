import { InferenceSession, Tensor } from 'onnxruntime-node';
import { GraphBuilder } from '@yoco/onnx';
import { readFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
const g = new GraphBuilder('probe');
const x = g.input('x', [1, 4]);
const y = g.op('MatMul', [x, g.initializer('w', new Float32Array(16).fill(1), [4, 4])], {}, { output: 'y' });
g.output(y, [1, 4]);
const bytes = g.toBytes({ opset: 17 });
for (const eps of [['cpu'], ['cuda', 'cpu'], ['cuda']]) {
  try {
    const dir = mkdtempSync(join(tmpdir(), 'ep-'));
    const s = await InferenceSession.create(bytes, { executionProviders: eps, enableProfiling: true, profileFilePrefix: join(dir, 'p') });
    await s.run({ x: new Tensor('float32', new Float32Array(4).fill(1), [1, 4]) });
    s.endProfiling();
    const f = readdirSync(dir);
    const ev = JSON.parse(readFileSync(join(dir, f[0]), 'utf8'));
    console.log(eps, [...new Set(ev.filter((e) => e.args?.provider).map((e) => `${e.args.op_name}@${e.args.provider}`))]);
    await s.release();
  } catch (e) { console.log(eps, 'ERR', e.message); }
}
