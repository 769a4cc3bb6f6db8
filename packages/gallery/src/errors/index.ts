export { InvalidSubjectIdError, SubjectNotFoundError, StoreMismatchError, TemplateRecordError, RedisVersionError, UnknownTokenError } from './gallery-errors.js';
