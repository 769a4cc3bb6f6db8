export { InvalidSubjectIdError, SubjectNotFoundError, StoreMismatchError } from './gallery-errors.js';
