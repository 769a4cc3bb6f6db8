import type { EngineName, Scorer } from './base-scorer.js';
import { FactorizedScorer, type FactorizedOptions } from './factorized-scorer.js';
import type { Head } from './head.js';
import { ReferenceScorer } from './reference-scorer.js';
import { YocoScorer, type YocoOptions } from './yoco-scorer.js';

export interface ScorerOptions extends YocoOptions, FactorizedOptions {
  engine?: EngineName;
}

/** Compiles a head into a scorer; `factorized` unless told otherwise. */
export async function createScorer(head: Head, options: ScorerOptions = {}): Promise<Scorer> {
  const engine = options.engine ?? 'factorized';
  switch (engine) {
    case 'reference':
      return new ReferenceScorer(head, { maxRows: options.maxRows, onFault: options.onFault });
    case 'yoco':
      return YocoScorer.create(head, options);
    case 'factorized':
      return FactorizedScorer.create(head, options);
    case 'int8':
      return FactorizedScorer.create(head, { ...options, int8: options.int8 ?? true });
    case 'resident':
      return FactorizedScorer.create(head, { ...options, int8: undefined, resident: options.resident ?? true });
    default:
      throw new RangeError(`unknown engine '${engine as string}'; expected reference, yoco, factorized, int8 or resident`);
  }
}
