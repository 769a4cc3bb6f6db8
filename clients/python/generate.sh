#!/usr/bin/env bash
# Generates the Python stubs from proto/ (python3 -m grpc_tools.protoc; Debian: python3-grpc-tools)
# into clients/python/stubs (or DEST). They are not committed: the protos are the contract.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/stubs}
mkdir -p "$dest"
python3 -m grpc_tools.protoc -I"$here/../../proto" --python_out="$dest" --grpc_python_out="$dest" \
  yoco/v1/matcher.proto yoco/v1/shard.proto yoco/v1/embedder.proto
echo "$dest"
