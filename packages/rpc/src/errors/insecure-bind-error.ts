import { FailedPreconditionError } from '@yoco/common';

/** A port that carries data, bound beyond loopback without TLS: refused unless ALLOW_INSECURE=1 says so on purpose. */
export class InsecureBindError extends FailedPreconditionError {
  constructor(address: string) {
    super(
      `refusing to serve plaintext gRPC on ${address}, which is reachable from other hosts: set TLS_CERT_FILE and TLS_KEY_FILE, bind 127.0.0.1, or set ALLOW_INSECURE=1 to do it on purpose`,
      'INSECURE_BIND',
    );
  }
}
