// The umbrella package: tfjs-core's own bundles register no gradients.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type TfBackend = 'wasm' | 'cpu';

/**
 * TensorFlow.js with the wasm backend (XNNPACK, SIMD): about 15x the plain
 * JS cpu backend on the head's matrix products here. cpu is the fallback
 * where wasm cannot start.
 */
export async function tfReady(backend: TfBackend = 'wasm'): Promise<typeof tf> {
  // PROD: no debug checks, and no "install tfjs-node" banner on a user's terminal.
  tf.env().set('PROD', true);
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend).catch(() => false);
    if (!ok) {
      if (backend === 'cpu') throw new Error('TensorFlow.js: no backend would start');
      await tf.setBackend('cpu');
    }
  }
  await tf.ready();
  return tf;
}

export { tf };
