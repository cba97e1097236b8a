#!/usr/bin/env bash
# docs/reference/: the reference of every module, role, filter and the callback, generated from their
# DOCUMENTATION and meta/argument_specs.yml by antsibull-docs (the collection docsite's own tool;
# simplified RST, one file each). tests/test_docs.py regenerates it and fails when it is stale: run
# this after changing a spec or a DOCUMENTATION block.
#   bash scripts/docs.sh [DEST]      (default docs/reference)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-docs/reference}
bin=${VENV:-$PWD/.venv}/bin
export PATH="$bin:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ANSIBLE_COLLECTIONS_PATH="$PWD/.state/collections" "$bin/antsibull-docs" collection --use-current \
  --dest-dir "$tmp" --output-format simplified-rst tradeops.dr >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
rm -rf "$dest" && mkdir -p "$dest"
cp "$tmp"/collections/tradeops/dr/*.rst "$dest"/
echo "docs.sh: $(find "$dest" -name "*.rst" | wc -l) files in $dest"
