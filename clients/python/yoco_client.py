"""A small Python client for the YOCO Matcher, over the stubs generate.sh makes.

    from yoco_client import Matcher
    m = Matcher("127.0.0.1:50051")                     # or ca_file=..., token=... for a secured cluster
    m.enrol("emp-1", vectors=[v])                     # or images=[open("a.jpg", "rb").read()]
    print(m.identify(vector=v, top_k=3))              # [(subject_id, score, accepted), ...]

Every call has a deadline. UNAVAILABLE is retried with backoff where a retry is safe: reads as
they are, and Enrol / Remove with a request_id (one is made when you give none), so a retry
returns the first attempt's job.
"""
import random
import struct
import time
import uuid

import grpc
from yoco.v1 import matcher_pb2 as pb, matcher_pb2_grpc as rpc


class MatcherError(Exception):
    """A failed call: the gRPC status name, YOCO's error code (the yoco-error-code trailer) and the details."""

    def __init__(self, err: grpc.RpcError):
        self.status = err.code().name
        trailers = dict(err.trailing_metadata() or ())
        self.yoco_code = trailers.get("yoco-error-code", "")
        self.details = err.details()
        super().__init__(f"{self.status}{f' ({self.yoco_code})' if self.yoco_code else ''}: {self.details}")


def _probe(vector=None, image=None):
    if image is not None:
        return pb.Probe(image=image)
    # Raw little-endian float32: no per-float encoding on either side.
    return pb.Probe(vector=pb.Vector(f32le=struct.pack(f"<{len(vector)}f", *vector)))


class Matcher:
    def __init__(self, address, ca_file=None, token=None, timeout=10.0, attempts=3, backoff=0.1):
        if ca_file:
            with open(ca_file, "rb") as f:
                self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=f.read()))
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = rpc.MatcherStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout, self._attempts, self._backoff = timeout, attempts, backoff

    def _call(self, method, request, retry, timeout=None):
        deadline = time.monotonic() + (timeout or self._timeout)
        for attempt in range(1, self._attempts + 1):
            try:
                return getattr(self._stub, method)(request, timeout=max(0.001, deadline - time.monotonic()), metadata=self._metadata)
            except grpc.RpcError as err:
                wait = min(2.0, self._backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                if not retry or err.code() != grpc.StatusCode.UNAVAILABLE or attempt == self._attempts or time.monotonic() + wait >= deadline:
                    raise MatcherError(err) from None
                time.sleep(wait)

    def identify(self, vector=None, image=None, top_k=10, threshold=0.0, allow_partial=False, consistency_token=""):
        res = self._call("Identify", pb.IdentifyRequest(probe=_probe(vector, image), top_k=top_k, threshold=threshold,
                                                        allow_partial=allow_partial, consistency_token=consistency_token), retry=True)
        return [(m.subject_id, m.score, m.accepted) for m in res.matches]

    def verify(self, subject_id, vector=None, image=None, threshold=0.0):
        res = self._call("Verify", pb.VerifyRequest(subject_id=subject_id, probe=_probe(vector, image), threshold=threshold), retry=True)
        return res.match, res.score

    def enrol(self, subject_id, vectors=(), images=(), replace=False, wait=True, request_id=None):
        probes = [_probe(vector=v) for v in vectors] + [_probe(image=i) for i in images]
        res = self._call("Enrol", pb.EnrolRequest(subject_id=subject_id, probes=probes, replace=replace, wait=wait,
                                                  request_id=request_id or str(uuid.uuid4())), retry=True, timeout=60)
        return res.job_id, res.consistency_token

    def remove(self, subject_id, wait=True, request_id=None):
        res = self._call("Remove", pb.RemoveRequest(subject_id=subject_id, wait=wait, request_id=request_id or str(uuid.uuid4())), retry=True, timeout=60)
        return res.job_id, res.consistency_token

    def close(self):
        self._channel.close()
