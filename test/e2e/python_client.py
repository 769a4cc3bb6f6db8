#!/usr/bin/env python3
"""An external gRPC client (Debian's python3-grpcio) against a running YOCO cluster.

usage: python_client.py STUBS_DIR ADDRESS PROBE_JSON PROBE_IMAGE
Prints one JSON object: the health statuses and the Identify answer.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from yoco.v1 import matcher_pb2, matcher_pb2_grpc  # noqa: E402


def main():
    address, probe_file = sys.argv[2], sys.argv[3]
    with open(probe_file) as f:
        probe = json.load(f)
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        statuses = {
            name or "(server)": health_pb2.HealthCheckResponse.ServingStatus.Name(
                health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status)
            for name in ["", "yoco.v1.Matcher"]
        }
        matcher = matcher_pb2_grpc.MatcherStub(channel)
        req = matcher_pb2.IdentifyRequest(
            probe=matcher_pb2.Probe(vector=matcher_pb2.Vector(values=probe["vector"])), top_k=5)
        res = matcher.Identify(req, timeout=10)
        with open(sys.argv[4], "rb") as f:
            image = f.read()
        by_image = matcher.Identify(matcher_pb2.IdentifyRequest(probe=matcher_pb2.Probe(image=image), top_k=3), timeout=30)
        try:
            matcher.Identify(matcher_pb2.IdentifyRequest(
                probe=matcher_pb2.Probe(vector=matcher_pb2.Vector(values=[1.0, 2.0]))), timeout=10)
            bad = "OK"
        except grpc.RpcError as err:
            bad = err.code().name
        print(json.dumps({
            "health": statuses,
            "matches": [{"subject_id": m.subject_id, "score": m.score, "accepted": m.accepted} for m in res.matches],
            "image_matches": [{"subject_id": m.subject_id, "score": m.score} for m in by_image.matches],
            "gallery_size": res.gallery_size,
            "bad_vector": bad,
        }))


if __name__ == "__main__":
    main()
