#!/usr/bin/env bash
# Regenerates gen/ (messages, stubs and .pyi) from proto/. Usage: scripts/gen_proto.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gen}
py=${PYTHON:-.venv/bin/python}
rm -rf "$out/herald"
mkdir -p "$out"
"$py" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  $(find proto -name '*.proto' | sort)
