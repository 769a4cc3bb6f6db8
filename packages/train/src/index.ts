export { HeadTrainer, DEFAULT_TRAIN_OPTIONS, type TrainOptions, type TrainProgress, type TrainResult, type EpochRecord } from './head-trainer.js';
export { TrainingDataError } from './errors/index.js';
export { tfReady, type TfBackend } from './tf-runtime.js';
export { buildPhotoSet, photoBase, photoView, sourceFiles, PHOTO_SOURCES, type PhotoSource, type PhotoSet, type PhotoSetOptions, type PhotoSetManifest } from './photo-set.js';
export { buildDefaultHead, DEFAULT_HEAD_FILES, type DefaultHeadReport } from './default-head.js';
