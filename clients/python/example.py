#!/usr/bin/env python3
"""Identifies the demo probe of a running `npm start`:
    clients/python/example.py STUBS_DIR ADDRESS PROBE_JSON
Prints one JSON line: the best match, a verify of it, and what a bad vector gets."""
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from yoco_client import Matcher, MatcherError  # noqa: E402


def main():
    address, probe_file = sys.argv[2], sys.argv[3]
    with open(probe_file) as f:
        probe = json.load(f)
    m = Matcher(address)
    try:
        matches = m.identify(vector=probe["vector"], top_k=3)
        best = matches[0]
        match, score = m.verify(best[0], vector=probe["vector"])
        try:
            m.identify(vector=[1.0, 2.0])
            bad = "OK"
        except MatcherError as e:
            bad = [e.status, e.yoco_code]
        print(json.dumps({"best": best[0], "accepted": best[2], "verify": [match, round(score, 4)], "bad": bad}))
    finally:
        m.close()


main()
