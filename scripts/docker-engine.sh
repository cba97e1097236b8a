#!/usr/bin/env bash
# A private Docker engine for Molecule: its own socket, data-root and exec-root under
# .state/docker (or $TRADEOPS_DR_DOCKER_STATE: .ci/run keeps it in /var/cache/tradeops-dr/docker,
# so that one CI run's images - the base, the rehearsals' layers, the execution environment and
# its build cache - serve the next clean clone; each is rebuilt when its recipe changes), no
# bridge and no iptables (containers use network mode none and are reached by docker exec), and
# the base image built locally with debootstrap (no registry is reachable here).
# Usage: docker-engine.sh start|stop|status|image|env
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
STATE=${TRADEOPS_DR_DOCKER_STATE:-$ROOT/.state/docker}
SOCK=$STATE/docker.sock
export DOCKER_HOST=unix://$SOCK
IMAGE=${TRADEOPS_DR_IMAGE:-tradeops-dr/debian12:bookworm}
# python3-yaml: modules that read YAML on the managed host (feed registry, model cards, .dvc files);
# python3-docker: the docker service manager (the Docker SDK) on a host that runs containers
IMAGE_PACKAGES=python3,python3-redis,python3-yaml,python3-docker,redis-server,redis-tools,procps
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

up() { docker info >/dev/null 2>&1; }

start() {
  if up; then return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "docker-engine: dockerd needs root" >&2; exit 1; fi
  mkdir -p "$STATE/data"
  # exec-root holds containerd's sockets: keep its path short (unix socket paths are limited)
  EXEC_ROOT=/run/tradeops-dr-docker-$(echo "$ROOT" | md5sum | cut -c1-8)
  dockerd --host "$DOCKER_HOST" --data-root "$STATE/data" --exec-root "$EXEC_ROOT" \
    --pidfile "$STATE/docker.pid" --bridge=none --iptables=false --ip6tables=false \
    >"$STATE/dockerd.log" 2>&1 &
  for _i in $(seq 1 60); do
    if up; then echo "docker-engine: up at $DOCKER_HOST"; return 0; fi
    sleep 0.5
  done
  echo "docker-engine: dockerd did not come up; last lines of $STATE/dockerd.log:" >&2
  tail -20 "$STATE/dockerd.log" >&2
  exit 1
}

stop() {
  if [ -f "$STATE/docker.pid" ]; then
    pid=$(cat "$STATE/docker.pid")
    if kill "$pid" 2>/dev/null; then
      for _i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
}

# The base image is rebuilt only when its recipe (packages, mirror) changes: the recipe's hash is
# its label `recipe`, and the debootstrap tarball is kept per recipe.
recipe() { echo "$IMAGE_PACKAGES $MIRROR" | sha256sum | cut -c1-16; }

image() {
  start
  # an engine kept between runs keeps what replaced images left: untagged images, and build cache
  # older than a week
  docker image prune -f >/dev/null 2>&1 || true
  docker builder prune -f --filter until=168h >/dev/null 2>&1 || true
  want=$(recipe)
  have=$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$have" = "$want" ]; then return 0; fi
  tarball=$STATE/images/debian12-bookworm-$want.tar
  if [ ! -s "$tarball" ]; then
    rootfs=$STATE/images/rootfs
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    echo "docker-engine: debootstrap bookworm ($IMAGE_PACKAGES)"
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$rootfs" "$MIRROR" \
      >"$STATE/images/debootstrap.log" 2>&1 || {
      tail -20 "$STATE/images/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    rm -f "$STATE"/images/debian12-bookworm*.tar
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  docker import -c "LABEL recipe=$want" -c 'CMD ["sleep", "infinity"]' "$tarball" "$IMAGE" >/dev/null
  echo "docker-engine: image $IMAGE imported (recipe $want)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if up; then docker info --format 'up: {{.ServerVersion}}, {{.Containers}} containers'; else echo down; exit 1; fi ;;
  image) image ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST TRADEOPS_DR_DOCKER_SOCK=$SOCK" ;;
  *) echo "usage: $0 start|stop|status|image|env" >&2; exit 2 ;;
esac
