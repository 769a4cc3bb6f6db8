export type { Head, HeadGraph } from './head.js';
export { sigmoid } from './head.js';
export { loadHead, parseHead } from './load-head.js';
export { metricHead, DEFAULT_METRIC_HEAD, type MetricHeadOptions } from './metric-head.js';
export { headToOnnx, type HeadExportOptions } from './export-head.js';
export { createScorer, type ScorerOptions } from './create-scorer.js';
export type { Scorer, EngineName, ScanResult, FaultListener } from './base-scorer.js';
export type { ScanBounds, ScanBlocks } from './int8-mirror.js';
export { ReferenceScorer } from './reference-scorer.js';
export type { YocoOptions } from './yoco-scorer.js';
export type { FactorizedOptions, Int8Options, Int8Simd } from './factorized-scorer.js';
export type { ResidentOptions } from './resident-scan.js';
export type { RuntimeOptions } from './ort-session.js';
export type { Match } from './top-k.js';
export { kthLargest, rankedOf, topK, type Ranked } from './top-k.js';
export { rescoreReaching, rescoreWithinBounds, type BoundedRescore, type ReachingRescore } from './bounded-rescore.js';
export { RescoredTopK } from './rescored-top-k.js';
export { BoundFloors } from './bound-floor.js';
export { HeadFormatError, RowIndexError, CapacityError, ProviderError } from './errors/index.js';
// The ONNX writer lives in @yoco/onnx; re-exported so model code needs one import.
export { GraphBuilder, OnnxDecodeError } from '@yoco/onnx';
export { VectorLengthError, NonFiniteVectorError, VectorRangeError } from '@yoco/common';
/** For benchmarks: a plain read of a scan's bytes, the floor under any scan of them. */
export { ReadFloor } from './kernel/read-floor.js';
export { assertProviders, misplaced, placementsOf, type NodePlacement } from './provider-check.js';
