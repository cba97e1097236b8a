#!/usr/bin/env bash
# CHANGELOG.rst: built by antsibull-changelog from changelogs/fragments/, as the release of the version in
# galaxy.yml would build it - in a scratch copy, so the fragments stay where they are until a real release
# (`antsibull-changelog release` in the checkout). tests/test_docs.py fails when CHANGELOG.rst is stale.
#   bash scripts/changelog.sh [DEST]      (default CHANGELOG.rst)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=${1:-$root/CHANGELOG.rst}
bin=${VENV:-$root/.venv}/bin
export PATH="$bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$root/.state/collections"
version=$(awk '/^version:/ {print $2}' galaxy.yml)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r changelogs galaxy.yml "$tmp"/
ln -s "$root/plugins" "$tmp/plugins"
ln -s "$root/meta" "$tmp/meta"
# the date is antsibull-changelog's record of the release (changelog.yaml), not part of CHANGELOG.rst
(cd "$tmp" && antsibull-changelog release --version "$version" --date 2000-01-01 >"$tmp/log" 2>&1) \
  || { cat "$tmp/log" >&2; exit 1; }
cp "$tmp/CHANGELOG.rst" "$dest"
echo "changelog.sh: $dest for $version, from $(find changelogs/fragments -name '*.yml' | wc -l) fragments"
