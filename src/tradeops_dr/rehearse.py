"""Molecule rehearsals: the collection's roles against real servers inside containers.

`tradeops-dr rehearse <scenario|all>` runs `molecule test -s <scenario>` for the scenarios under
`molecule/` in the project's private Docker engine (scripts/docker-engine.sh: own socket and
data-root, no bridge; containers use network mode none and Ansible reaches them by docker exec),
after building the images the scenarios name:

- the base image: Debian 12 by debootstrap + docker import (scripts/docker-engine.sh image);
- layers on it, one Dockerfile each under molecule/images/<layer>/ (PostgreSQL 15 + TimescaleDB +
  pgBackRest, JRE + QuestDB, git + DVC), built with the host's network (the private engine has no
  bridge; only the package mirrors are reached). A layer is rebuilt only when its recipe changes:
  the Dockerfile, the files put beside it and the image it starts from, hashed into the image's
  label `tradeops.dr.recipe`.

The containers are removed by the Docker SDK before and after each scenario (`molecule test
--destroy never`): the same removal as the Docker driver's destroy playbook, without two
ansible-playbook runs per scenario. `molecule test -s <scenario>` run by hand keeps the full
sequence. Scenarios that share no containers run side by side (--jobs). Each scenario's time and log are
printed; the run fails when any scenario fails.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import builds, errors
from .paths import project_root, with_callbacks

BASE_IMAGE = "tradeops-dr/debian12:bookworm"
LAYER_PREFIX = "tradeops-dr/molecule-"
LAYER_TAG = "bookworm"
RECIPE_LABEL = "tradeops.dr.recipe"
# what each layer needs from this machine besides its Dockerfile, and why a rehearsal cannot run
# without it
LAYER_NEEDS = {"postgres": "timescaledb", "questdb": "questdb"}


RehearsalError = errors.RehearsalError


def layer_image(layer: str) -> str:
    return f"{LAYER_PREFIX}{layer}:{LAYER_TAG}"


def scenarios(root: Path | None = None) -> list[str]:
    root = root or project_root()
    return sorted(p.parent.name for p in (root / "molecule").glob("*/molecule.yml"))


def _platforms(name: str, root: Path | None = None) -> list[dict]:
    """The platforms (containers) of a scenario's molecule.yml."""
    root = root or project_root()
    return yaml.safe_load((root / "molecule" / name / "molecule.yml").read_text()).get("platforms", [])


def scenario_images(name: str, root: Path | None = None) -> list[str]:
    return sorted({p["image"] for p in _platforms(name, root)})


def _layer_of(image: str) -> str | None:
    if image == BASE_IMAGE:
        return None
    if image.startswith(LAYER_PREFIX) and image.endswith(":" + LAYER_TAG):
        return image[len(LAYER_PREFIX):-len(LAYER_TAG) - 1]
    raise RehearsalError(f"image {image} is neither the base image {BASE_IMAGE} nor a layer {LAYER_PREFIX}<name>:"
                         f"{LAYER_TAG} of molecule/images")


def why_not(layer: str | None) -> str | None:
    """None when this machine has what the layer is built from, else what is missing."""
    need = LAYER_NEEDS.get(layer or "")
    return builds.missing(need) if need else None


def _timescaledb_tar() -> bytes:
    """The TimescaleDB files installed into this machine's PostgreSQL 15, as a tar rooted at /."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder, pattern in ((builds.PG_LIB, "timescaledb*.so"), (builds.PG_SHARE, "timescaledb*")):
            for path in sorted(folder.glob(pattern)):
                info = tar.gettarinfo(str(path), arcname=str(path).lstrip("/"))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


def _context_files(layer: str) -> dict[str, bytes]:
    """The files a layer's Dockerfile copies, besides itself."""
    if layer == "postgres":
        return {"timescaledb.tar": _timescaledb_tar()}
    if layer == "questdb":
        jar = builds.questdb_jar()
        return {"questdb.jar": jar.read_bytes()} if jar else {}
    if layer in ("gitdvc", "trading", "dagster"):
        certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        return {"ca/.keep": b"", **{f"ca/{c.name}": c.read_bytes() for c in certs}}
    return {}


def _docker():
    import docker

    return docker.from_env(timeout=600)


def _image_label(client, image: str) -> tuple[str | None, str | None]:
    import docker

    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None, None
    return img.id, (img.labels or {}).get(RECIPE_LABEL)


def base_image(root: Path, log=print) -> None:
    """The debootstrap base (built once, kept while its image exists)."""
    res = subprocess.run(["bash", str(root / "scripts" / "docker-engine.sh"), "image"], cwd=root,
                         capture_output=True, text=True, check=False)
    if res.returncode:
        raise RehearsalError(f"the base image {BASE_IMAGE} could not be built: {res.stderr.strip()[-2000:]}")
    if res.stdout.strip():
        log(res.stdout.strip())


def build_layer(layer: str, root: Path | None = None, log=print) -> str:
    """Build molecule/images/<layer> unless an image of the same recipe exists. Returns
    'built' or 'kept'."""
    root = root or project_root()
    missing = why_not(layer)
    if missing:
        raise RehearsalError(f"layer {layer}: {missing}")
    recipe_dir = root / "molecule" / "images" / layer
    dockerfile = recipe_dir / "Dockerfile"
    if not dockerfile.is_file():
        raise RehearsalError(f"layer {layer}: no {dockerfile}")
    client = _docker()
    base_id, _base_recipe = _image_label(client, BASE_IMAGE)
    if base_id is None:
        raise RehearsalError(f"the base image {BASE_IMAGE} is missing (scripts/docker-engine.sh image)")
    files = _context_files(layer)
    digest = hashlib.sha256(dockerfile.read_bytes() + base_id.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    recipe = digest.hexdigest()[:16]
    tag = layer_image(layer)
    _old_id, have = _image_label(client, tag)
    if have == recipe:
        return "kept"
    ctx = root / ".state" / "images" / "context" / layer
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    shutil.copy(dockerfile, ctx / "Dockerfile")
    for name, data in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_bytes(data)
    build_log = root / ".state" / "images" / f"{layer}.build.log"
    log(f"building {tag} (recipe {recipe}; log {build_log}) ...")
    started = time.monotonic()
    error = None
    with open(build_log, "w") as out:
        for chunk in client.api.build(path=str(ctx), tag=tag, network_mode="host", rm=True, forcerm=True,
                                      buildargs={"BASE": BASE_IMAGE}, labels={RECIPE_LABEL: recipe}, decode=True):
            if "stream" in chunk:
                out.write(chunk["stream"])
            if "error" in chunk:
                error = chunk["error"]
                out.write(error + "\n")
    shutil.rmtree(ctx, ignore_errors=True)
    if error:
        raise RehearsalError(f"layer {layer} failed to build: {error.strip()} (log {build_log})")
    log(f"built {tag} in {time.monotonic() - started:.0f} s")
    return "built"


@dataclass
class Result:
    name: str
    status: str  # passed, failed, skipped
    seconds: float
    log: Path | None
    why: str = ""


def _env(root: Path) -> dict:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env.setdefault("ANSIBLE_CONFIG", str(root / "ansible.cfg"))
    exported = subprocess.run(["bash", str(root / "scripts" / "docker-engine.sh"), "env"],
                              capture_output=True, text=True, check=True).stdout.split()
    # export DOCKER_HOST=unix://... TRADEOPS_DR_DOCKER_SOCK=/... (the socket service_docker mounts)
    for pair in exported[1:]:
        name, _eq, value = pair.partition("=")
        env[name] = value
    env["PY_COLORS"] = "0"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    # molecule writes its own ansible.cfg (no pipelining): with it, a task over the docker connection is one
    # `docker exec` with the module on stdin instead of a temporary folder, a copy, an exec and a clean-up -
    # the kill_switch rehearsal 40 -> 31 s (docs/testing.md) - and no module arguments land on a container's disk
    env.setdefault("ANSIBLE_PIPELINING", "True")
    # molecule's ansible.cfg enables none of the collection's callbacks: lean_workers is added (each of the
    # controller's workers freezes what it inherited, docs/architecture.md), after the user's own
    env["ANSIBLE_CALLBACKS_ENABLED"] = with_callbacks(env.get("ANSIBLE_CALLBACKS_ENABLED", ""),
                                                      "tradeops.dr.lean_workers")
    return env


def scenario_containers(name: str, root: Path | None = None) -> list[str]:
    """The containers a scenario's molecule.yml creates (its platforms' names)."""
    return [p["name"] for p in _platforms(name, root)]


def remove_containers(names: list[str], client=None) -> list[str]:
    """Force-remove these containers (their volumes kept, as the Docker driver's destroy.yml does);
    returns the names that existed. One API call each instead of a destroy playbook: in a
    rehearsal the driver's destroy ran twice (before create, after verify), 7 s and an
    ansible-playbook start each, a third of a scenario's time on this machine."""
    import docker

    client = client or _docker()
    removed = []
    for name in names:
        try:
            client.containers.get(name).remove(force=True, v=False)
        except docker.errors.NotFound:
            continue
        removed.append(name)
    return removed


def run_scenario(name: str, root: Path, env: dict, log_dir: Path) -> Result:
    """`molecule test -s NAME --destroy never`, in a fresh ephemeral folder, between two removals of
    the scenario's containers by the Docker SDK (leftovers of an aborted run before, this run's
    after - also when it failed)."""
    log = log_dir / f"{name}.log"
    state = log_dir / f"{name}.molecule"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    containers = scenario_containers(name, root)
    started = time.monotonic()
    with open(log, "w") as out:
        left = remove_containers(containers)
        if left:
            out.write(f"rehearse: removed the containers an earlier run left: {', '.join(left)}\n")
            out.flush()
        try:
            rc = subprocess.run(["molecule", "test", "-s", name, "--destroy", "never"], cwd=root,
                                env={**env, "MOLECULE_EPHEMERAL_DIRECTORY": str(state)}, stdout=out,
                                stderr=subprocess.STDOUT, check=False).returncode
        finally:
            removed = remove_containers(containers)
            out.write(f"rehearse: removed the containers {', '.join(removed) or '(none left)'}\n")
    shutil.rmtree(state, ignore_errors=True)
    return Result(name, "passed" if rc == 0 else "failed", time.monotonic() - started, log)


def rehearse(names: list[str], jobs: int = 1, root: Path | None = None, log=print,
             strict: bool = False) -> list[Result]:
    """Build what the scenarios need and run them, `jobs` at a time. A scenario whose servers this
    machine lacks is skipped with the reason (a failure when strict: CI has them)."""
    root = root or project_root()
    known = scenarios(root)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RehearsalError(f"no Molecule scenario {', '.join(unknown)} (there are: {', '.join(known)})")
    env = _env(root)
    os.environ["DOCKER_HOST"] = env["DOCKER_HOST"]
    base_image(root, log)  # starts the engine too
    results: list[Result] = []
    runnable = []
    built: dict[str, str | Exception] = {}

    def ensure(lyr: str) -> str | Exception:
        """The layer built (or kept), once per run; its error instead of raising."""
        if lyr not in built:
            started = time.monotonic()
            try:
                built[lyr] = build_layer(lyr, root, log)
            except RehearsalError as exc:
                built[lyr] = exc
            if built[lyr] == "kept":
                log(f"image {layer_image(lyr)} is up to date ({time.monotonic() - started:.1f} s to check)")
        return built[lyr]

    for name in names:
        layers = [lyr for lyr in map(_layer_of, scenario_images(name, root)) if lyr]
        missing = next((f"{lyr}: {why}" for lyr in layers for why in [why_not(lyr)] if why), "")
        if missing:
            results.append(Result(name, "failed" if strict else "skipped", 0.0, None, missing))
            log(f"rehearse {name}: {'cannot run' if strict else 'skipped'}: {missing}")
            continue
        failure = next((str(b) for b in map(ensure, layers) if isinstance(b, Exception)), "")
        if failure:
            results.append(Result(name, "failed", 0.0, None, failure))
            log(f"rehearse {name}: failed before it started: {failure}")
            continue
        runnable.append(name)
    log_dir = root / ".state" / "rehearse"
    log_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def one(name: str) -> Result:
        with lock:
            log(f"rehearse {name}: molecule test -s {name} (log {log_dir / (name + '.log')})")
        res = run_scenario(name, root, env, log_dir)
        with lock:
            log(f"rehearse {name}: {res.status} in {res.seconds:.0f} s")
            if res.status == "failed":
                log(_tail(res.log))
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results += list(pool.map(one, runnable))
    return sorted(results, key=lambda r: names.index(r.name))


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    | " + line for line in text[-lines:])


def summary(results: list[Result], wall: float) -> list[str]:
    out = [f"{'scenario':<20} {'result':<8} {'seconds':>8}"]
    for r in results:
        out.append(f"{r.name:<20} {r.status:<8} {r.seconds:>8.0f}" + (f"  ({r.why})" if r.why else ""))
    passed = sum(r.status == "passed" for r in results)
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    out.append(f"{passed} passed, {failed} failed, {skipped} skipped in {wall:.0f} s "
               f"(scenario time {sum(r.seconds for r in results):.0f} s)")
    return out
