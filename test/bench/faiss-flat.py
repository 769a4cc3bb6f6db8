"""FAISS IndexFlatIP over the same raw vectors as bench:head, as an external row.

Usage: faiss-flat.py ROWS.f32 QUERIES.f32 D K  (little-endian float32, row-major)
Prints one JSON object: each query's search time (ms) and the first query's
top-k ids. Plain inner-product search: not the head's scores.
"""
import json
import sys
import time

import faiss
import numpy as np

rows_file, queries_file, d, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = np.fromfile(rows_file, dtype="<f4").reshape(-1, d)
queries = np.fromfile(queries_file, dtype="<f4").reshape(-1, d)
index = faiss.IndexFlatIP(d)
index.add(rows)
for q in queries[:2]:
    index.search(q[None, :], k)
times = []
first = None
for i, q in enumerate(queries):
    t = time.perf_counter()
    _, ids = index.search(q[None, :], k)
    times.append((time.perf_counter() - t) * 1000)
    if i == 0:
        first = ids[0].tolist()
print(json.dumps({
    "times": times,
    "top": first,
    "threads": faiss.omp_get_max_threads(),
    "version": faiss.__version__,
}))
