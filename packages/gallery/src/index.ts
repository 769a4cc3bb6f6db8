export { SLOT_COUNT, slotOf, jumpHash, shardOfSlot, ownedSlots, assertSubjectId } from './slots.js';
export { GalleryStore, type GalleryStoreOptions, type WriteOptions, type PutOptions, type Change, type PutResult, type StreamInfo } from './gallery-store.js';
export { GallerySlice, type SubjectMatch } from './gallery-slice.js';
export { templateIdOf, encodeTemplate, decodeTemplate, decodeCheckedTemplate, type Template } from './template-record.js';
export { compareStreamIds, isStreamId, STREAM_START } from './stream-id.js';
export { InvalidSubjectIdError, SubjectNotFoundError, StoreMismatchError, TemplateRecordError, RedisVersionError } from './errors/index.js';
export { SliceFollower, type SliceFollowerOptions, type SliceState, type FollowerEvent } from './slice-follower.js';
export { StoreKeys } from './keys.js';
export { connectRedis, reconnectDelay, type RedisPurpose } from './redis-connection.js';
