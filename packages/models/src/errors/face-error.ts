import { FailedPreconditionError } from '@yoco/common';

/**
 * A frame the face profile cannot use: no face in it (code NO_FACE), or
 * several where one was required (FACE_SELECT). FAILED_PRECONDITION: the image
 * decoded fine; what it shows is the problem.
 */
export class FaceError extends FailedPreconditionError {
  constructor(message: string, code: 'NO_FACE' | 'FACE_SELECT') {
    super(message, code);
  }
}
