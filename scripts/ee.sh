#!/usr/bin/env bash
# The execution environment (execution-environment.yml, ansible-builder 3) built for real in the
# private Docker engine (scripts/docker-engine.sh). No registry is reachable here, so the base
# image is built locally: debootstrap of Debian 12 with python3, pip and ensurepip (python3-venv: ansible-builder runs it), plus this machine's local
# CA certificates (/usr/local/share/ca-certificates: an egress proxy's CA, where there is one)
# so pip reaches the package index from inside the build. The build uses the host's network
# (the private engine has no bridge).
#
#   scripts/ee.sh build     base image (once per recipe), collection tarball + CLI wheel, ansible-builder build
#   scripts/ee.sh info      the image's tag, size and what is inside
#   scripts/ee.sh drill [SCENARIO...]  tradeops-dr drill inside the image against this host's sandbox
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
eval "$(bash scripts/docker-engine.sh env)"
VERSION=$(awk '/^version:/ {print $2}' galaxy.yml)
BASE=tradeops-dr/ee-base:bookworm
TAG=${TRADEOPS_DR_EE_TAG:-tradeops-dr/ee:$VERSION}
WORK=$ROOT/.state/ee
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=python3,python3-pip,python3-venv,ca-certificates
PY=${PYTHON:-$ROOT/.venv/bin/python}

base_recipe() { { echo "$BASE_PACKAGES $MIRROR pep668-off"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | sha256sum | cut -c1-16; }

base() {
  recipe=$(base_recipe)
  have=$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$BASE" 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then return 0; fi
  rootfs=$WORK/rootfs
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  echo "ee: debootstrap bookworm ($BASE_PACKAGES) for $BASE"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  # the image's Python belongs to pip, as in the RHEL images ansible-builder expects (ensurepip and
  # pip would otherwise refuse the system Python: PEP 668)
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -cf - . | docker import -c "LABEL recipe=$recipe" -c 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  echo "ee: base image $BASE imported (recipe $recipe)"
}

files() {
  rm -rf "$WORK/files" && mkdir -p "$WORK/files"
  "$ROOT/.venv/bin/ansible-galaxy" collection build --force --output-path "$WORK/files" . >/dev/null
  mv "$WORK/files/tradeops-dr-$VERSION.tar.gz" "$WORK/files/tradeops-dr.tar.gz"
  # community.docker (its nsenter connection: the drill inside the image reaches the host it runs
  # on) and its dependency, repacked from the copies the PyPI `ansible` bundle installed (no Galaxy
  # here). The bundle leaves out the tests and CI files its FILES.json still lists: the repack
  # lists only the files present (their checksums unchanged) and updates MANIFEST.json to match.
  "$PY" - "$WORK/files" community.docker community.library_inventory_filtering_v1 <<'PYEOF'
import hashlib, importlib, io, json, os, sys, tarfile

out = sys.argv[1]
for name in sys.argv[2:]:
    root = list(importlib.import_module(f"ansible_collections.{name}").__path__)[0]
    files = json.load(open(os.path.join(root, "FILES.json")))
    files["files"] = [f for f in files["files"] if os.path.lexists(os.path.join(root, f["name"]))]
    files_json = json.dumps(files, indent=4).encode()
    manifest = json.load(open(os.path.join(root, "MANIFEST.json")))
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    with tarfile.open(os.path.join(out, name.replace(".", "-").replace("_", "-") + ".tar.gz"), "w:gz") as tar:
        for arc, data in (("MANIFEST.json", json.dumps(manifest, indent=4).encode()), ("FILES.json", files_json)):
            info = tarfile.TarInfo(arc)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for f in files["files"]:
            if f["name"] != ".":
                tar.add(os.path.join(root, f["name"]), arcname=f["name"], recursive=False)
PYEOF
  # the CLI's own dependencies, for a layer of the base stage that changes only when they do (the wheel is new at
  # every commit, and its install downloaded and installed matplotlib, numpy, rich... again each time)
  mkdir -p "$WORK/cli"
  "$PY" - "$WORK/cli/cli-requirements.txt" <<'PYEOF'
import re, sys, tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
keep = [d for d in deps if re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() not in ("ansible-core", "ansible-runner")]
open(sys.argv[1], "w").write("# written by scripts/ee.sh from pyproject.toml\n" + "\n".join(keep) + "\n")
PYEOF
  # the CLI's wheel, built from a copy (a build in the checkout leaves build/ behind)
  src=$(mktemp -d)
  git ls-files -z | xargs -0 cp --parents -t "$src"
  "$PY" -m pip wheel --quiet --no-deps -w "$WORK/files" "$src" 2>&1 | grep -v "^WARNING: Location" || true
  rm -rf "$src"
  ls "$WORK/files"/tradeops_dr-*.whl >/dev/null
}

build() {
  bash scripts/docker-engine.sh start
  mkdir -p "$WORK"
  t0=$(date +%s)
  base
  t1=$(date +%s)
  files
  "$ROOT/.venv/bin/ansible-builder" build -f execution-environment.yml -c "$WORK/context" -t "$TAG" \
    --container-runtime docker --extra-build-cli-args "--network host" -v 2 >"$WORK/build.log" 2>&1 || {
    tail -40 "$WORK/build.log" >&2; echo "ee: build failed (whole log: $WORK/build.log)" >&2; exit 1; }
  t2=$(date +%s)
  size=$(docker image inspect -f '{{ .Size }}' "$TAG")
  echo "ee: $TAG built: base $((t1 - t0)) s, ansible-builder $((t2 - t1)) s, image $((size / 1048576)) MiB"
}

info() {
  docker image inspect -f '{{ .Size }}' "$TAG" | awk -v t="$TAG" '{printf "%s %d MiB\n", t, $1 / 1048576}'
  docker run --rm --network none "$TAG" bash -c \
    'ansible --version | head -1; ansible-runner --version; ansible-galaxy collection list tradeops.dr 2>/dev/null | tail -1; tradeops-dr --help | head -1'
}

drill() {
  # The drill inside the image, against the sandbox on this host: the image's ansible-runner and
  # tradeops-dr are the controller; every sandbox host is reached through community.docker's
  # nsenter connection (the host's namespaces, its processes and the checkout's Python), the way
  # an AWX job reaches its hosts through SSH. The sandbox folder is mounted at its own path (the
  # inventory reads its state and secrets there). Each call keeps its inventory and reports in a
  # folder of its own (TRADEOPS_DR_EE_DRILL_DIR, else a new one under .state/ee/drills): two calls
  # can run side by side (CI runs the front door's drill from pytest while its background chain
  # drills the others).
  scenarios=("$@")
  [ ${#scenarios[@]} -gt 0 ] || scenarios=(all)
  sandbox=${TRADEOPS_DR_SANDBOX:-$ROOT/.sandbox}
  TRADEOPS_DR_SANDBOX=$sandbox "$ROOT/.venv/bin/tradeops-dr" sandbox up >/dev/null
  call=${TRADEOPS_DR_EE_DRILL_DIR:-}
  if [ -z "$call" ]; then
    mkdir -p "$WORK/drills"
    call=$(mktemp -d "$WORK/drills/drill.XXXXXX")
  fi
  inv=$call/inventory
  rm -rf "$inv" && mkdir -p "$call" && cp -r inventories/local "$inv"
  echo "ee: drill ${scenarios[*]} inside $TAG: inventory and reports in $call"
  # nsenter enters the namespaces of this script's process (alive for the whole run): those of
  # PID 1 may be closed to it (they are on a sandboxed machine like this one)
  TRADEOPS_DR_SANDBOX=$sandbox "$PY" - "$inv" "$ROOT/.venv/bin/python" "$$" <<'PYEOF'
import json
import subprocess
import sys
from pathlib import Path

import yaml

inv, python, pid = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
hosts = set()

def walk(group):
    hosts.update((group.get("hosts") or {}).keys())
    for child in (group.get("children") or {}).values():
        walk(child or {})

walk(yaml.safe_load((inv / "hosts.yml").read_text())["all"])
# and the parts this sandbox runs, which sandbox_parts.sh adds (QuestDB, the inference and PMS stand-ins, the
# configuration): reached the same way, or a recovery that starts one would run its command inside the image
parts = json.loads(subprocess.run([str(inv / "sandbox_parts.sh"), "--list"], capture_output=True, text=True,
                                  check=True).stdout)
hosts.update(h for name, group in parts.items() if name != "_meta" for h in group.get("hosts", []))
conn = {"ansible_connection": "community.docker.nsenter", "ansible_nsenter_pid": pid, "ansible_python_interpreter": python}
(inv / "nsenter.yml").write_text("# written by scripts/ee.sh drill: the sandbox hosts through nsenter\n"
                                 + yaml.safe_dump({"all": {"hosts": {h: conn for h in sorted(hosts)}}}))
PYEOF
  mkdir -p "$call/out"
  # a sandbox in a folder the postgres user cannot enter keeps PostgreSQL's files elsewhere
  # (/var/lib/tradeops-dr/...; sandbox.json names them): mounted at their own path too
  mounts=(-v "$sandbox:$sandbox")
  pgroot=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["postgres"]["root"])' "$sandbox/sandbox.json")
  case "$pgroot/" in "$sandbox"/*) ;; *) mounts+=(-v "$pgroot:$pgroot") ;; esac
  rc=0
  # root with CAP_SYS_ADMIN and CAP_SYS_PTRACE: what nsenter needs (and the drill's kill -9 of a
  # sandbox server); no --privileged
  docker run --rm --network host --pid host --user 0 --cap-add SYS_ADMIN --cap-add SYS_PTRACE \
    "${mounts[@]}" -v "$inv:/ee/inventory:ro" -v "$call/out:/ee/out" \
    -e TRADEOPS_DR_SANDBOX="$sandbox" -e TRADEOPS_DR_DRILLS_DIR=/ee/out/drills \
    -e TRADEOPS_DR_PORT_SLICE="${TRADEOPS_DR_PORT_SLICE:-}" \
    -e TRADEOPS_DR_INCIDENTS_DIR=/ee/out/incidents "$TAG" tradeops-dr drill "${scenarios[@]}" -i /ee/inventory || rc=$?
  # A server a recovery started from inside the image ran in the container's cgroup (nsenter enters
  # namespaces, not cgroups), and Docker ended it with the container: start the sandbox again.
  # (Over SSH, the way AWX reaches its hosts, this does not arise.)
  TRADEOPS_DR_SANDBOX=$sandbox "$ROOT/.venv/bin/tradeops-dr" sandbox up >/dev/null
  return $rc
}

case "${1:-}" in
  build) build ;;
  info) info ;;
  drill) shift; drill "$@" ;;
  *) echo "usage: $0 build|info|drill [SCENARIO...]" >&2; exit 2 ;;
esac
