#!/usr/bin/env bash
# The resident engine on a GPU: provider check, then bench:resident at a million rows.
# Needs Node 20 (NODE, or node on PATH), a built tree (npm ci && npm run build), and
# onnxruntime-node's CUDA provider libraries in node_modules (deploy/Dockerfile.cuda's
# build stage puts them there; see docs/gpu.md). Writes test/bench/results/resident-cuda.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE=${NODE:-node}
N=${N:-1000000}
SEGMENT=${SEGMENT:-65536}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU here" >&2; exit 2; }
"$NODE" --version
lib=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
ls "$lib"/libonnxruntime_providers_cuda.so >/dev/null 2>&1 || { echo "no CUDA provider in $lib: see docs/gpu.md" >&2; exit 2; }
# The shard's own check first: every node of a probe of the scan graph must run on CUDA.
ORT_PROVIDERS=cuda,cpu "$NODE" --input-type=module -e "import('@yoco/head').then(async (h) => { await h.assertProviders(['cuda', 'cpu']); console.log('provider check: every node ran on CUDAExecutionProvider'); })"
ORT_PROVIDERS=cuda,cpu "$NODE" --max-old-space-size=16384 --import tsx test/bench/resident.bench.ts --n="$N" --segment="$SEGMENT"
