export { InvalidSubjectIdError, SubjectNotFoundError, StoreMismatchError, TemplateRecordError, RedisVersionError } from './gallery-errors.js';
