"""The docker manager of service control against a real Docker engine (the private one of
scripts/docker-engine.sh) and a real container with a HEALTHCHECK."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _service as svc

pytestmark = [pytest.mark.integration, pytest.mark.docker]
IMAGE = os.environ.get("TRADEOPS_DR_IMAGE", "tradeops-dr/debian12:bookworm")


def _engine():
    """The engine, or a skip for exactly two reasons: no engine answers, or the image is not
    built. Any other error is a test failure. Under TRADEOPS_DR_REQUIRE_DOCKER=1 (scripts/test.sh
    with its engine) even those two fail."""
    import docker
    from docker.errors import DockerException, ImageNotFound

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client = None
    if host.startswith("unix://") and not os.path.exists(host[len("unix://"):]):
        # checked first: the SDK leaves its socket open when it cannot reach an engine
        why = f"no Docker engine socket at {host} (scripts/docker-engine.sh up)"
    else:
        try:
            client = docker.from_env()
            client.ping()
        except DockerException as exc:  # nothing answers on the socket
            if client is not None:
                client.close()
            client, why = None, f"no Docker engine answers at {host} (scripts/docker-engine.sh up): {exc}"
    if client is not None:
        try:
            client.images.get(IMAGE)
            return client
        except ImageNotFound as exc:
            client.close()
            why = f"the image {IMAGE} is not built (scripts/docker-engine.sh image): {exc}"
    if os.environ.get("TRADEOPS_DR_REQUIRE_DOCKER") == "1":
        pytest.fail(f"TRADEOPS_DR_REQUIRE_DOCKER=1, yet {why}")
    pytest.skip(why)


def docker_errors():
    import docker

    return docker.errors


@pytest.fixture
def container():
    client = _engine()
    name = "tradeops-dr-test-" + uuid.uuid4().hex[:8]
    cont = client.containers.run(
        IMAGE, ["redis-server", "--port", "6391", "--bind", "127.0.0.1", "--save", ""], name=name, detach=True,
        network_mode="none",
        healthcheck=dict(test=["CMD", "redis-cli", "-p", "6391", "ping"], interval=300_000_000,
                         timeout=1_000_000_000, retries=3, start_period=0))
    yield name, cont
    try:
        cont.remove(force=True)
    except docker_errors().NotFound:  # a test removed it
        pass
    client.close()


def _run(argv, data=None):
    p = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def _params(name, **kw):
    p = dict(name=name, manager="docker", docker_host=os.environ.get("DOCKER_HOST"), stop_timeout=5,
             ready_timeout=30, probe={})
    p.update(kw)
    return p


def test_restart_waits_for_the_container_to_be_healthy(container):
    name, cont = container
    res = svc.ensure_state(_params(name), "restarted", _run)
    assert res["actions"] == ["restart"]
    st = svc.get_manager(_params(name), _run).status()
    assert st["running"] and st["health"] == "healthy"
    cont.reload()
    assert cont.attrs["State"]["Health"]["Status"] == "healthy"


def test_stop_then_start_and_check_mode(container):
    name, cont = container
    stopped = svc.ensure_state(_params(name), "stopped", _run)
    assert stopped["actions"] == ["stop"] and stopped["running"] is False
    cont.reload()
    assert cont.status == "exited"
    predicted = svc.ensure_state(_params(name), "started", _run, check_mode=True)
    assert predicted["actions"] == ["start"]
    cont.reload()
    assert cont.status == "exited"
    started = svc.ensure_state(_params(name), "started", _run)
    assert started["running"] is True
    assert svc.get_manager(_params(name), _run).status()["health"] == "healthy"
    again = svc.ensure_state(_params(name), "started", _run)
    assert again["changed"] is False


def test_missing_container_is_named():
    _engine()
    with pytest.raises(svc.ServiceError, match="no container named tradeops-dr-nope"):
        svc.ensure_state(_params("tradeops-dr-nope"), "started", _run)


@pytest.fixture
def compose_project(tmp_path):
    _engine()
    if not any(os.access(os.path.join(d, "docker-compose"), os.X_OK) for d in os.environ["PATH"].split(os.pathsep)):
        if os.environ.get("TRADEOPS_DR_REQUIRE_DOCKER") == "1":
            pytest.fail("docker-compose is required here (scripts/setup.sh installs it)")
        pytest.skip("docker-compose is not installed")
    project = "tdr" + uuid.uuid4().hex[:8]
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        'version: "3.7"\nservices:\n  cache:\n'
        f'    image: {IMAGE}\n'
        '    command: ["redis-server", "--port", "6392", "--bind", "127.0.0.1", "--save", ""]\n'
        "    network_mode: none\n"
        "    healthcheck:\n"
        '      test: ["CMD", "redis-cli", "-p", "6392", "ping"]\n'
        "      interval: 1s\n")
    base = ["docker-compose", "-p", project, "-f", str(compose)]
    subprocess.run(base + ["up", "-d"], check=True, capture_output=True)
    yield project, compose
    subprocess.run(base + ["down", "-t", "1"], check=False, capture_output=True)


def test_compose_service_restart_stop_start(compose_project):
    project, compose = compose_project
    params = _params("cache", manager="compose", compose_project=project, compose_files=[str(compose)])
    res = svc.ensure_state(params, "restarted", _run)
    assert res["actions"] == ["restart"] and res["running"] is True
    assert svc.get_manager(params, _run).status()["health"] == "healthy"
    stopped = svc.ensure_state(params, "stopped", _run)
    assert stopped["running"] is False
    started = svc.ensure_state(params, "started", _run)
    assert started["actions"] == ["start"] and started["running"] is True
    assert svc.get_manager(params, _run).status()["health"] == "healthy"


def test_compose_service_without_a_container_is_explained(compose_project):
    project, compose = compose_project
    params = _params("ghost", manager="compose", compose_project=project, compose_files=[str(compose)])
    with pytest.raises(svc.ServiceError, match=r"compose service ghost is not defined in the compose project \("):
        svc.ensure_state(params, "started", _run)


def test_strategy_health_reads_a_containers_log_through_the_sdk(tmp_path, capsys):
    """strategy_health's log source for a strategy in a container: its logs, read through the
    Docker SDK (no log file on the host)."""
    import json
    import time

    from ansible_collections.tradeops.dr.plugins.modules import strategy_health
    from conftest import run_module

    client = _engine()
    name = "tradeops-dr-strategy-" + uuid.uuid4().hex[:8]
    script = ("echo 'strategy starting'; for i in 1 2 3; do echo \"reconnect attempt $i/3\"; done; "
              "echo 'reconnect failed after 3 attempts, giving up'; echo 'ERROR: no price since 40 s'; sleep 300")
    cont = client.containers.run(IMAGE, ["sh", "-c", script], name=name, detach=True, network_mode="none")
    try:
        deadline = time.time() + 20
        while b"no price" not in cont.logs() and time.time() < deadline:
            time.sleep(0.2)
        heartbeat = tmp_path / "heartbeat.json"
        heartbeat.write_text(json.dumps({"ts": time.time(), "price_ts": time.time() - 40}))
        out, failed = run_module(strategy_health, dict(heartbeat_file=str(heartbeat), container=name, max_age=30,
                                                       docker_host=os.environ.get("DOCKER_HOST")), capsys)
        assert not failed, out
        st = out["strategy"]
        assert st["state"] == "disconnected" and st["reconnect_attempts"] == 3 and st["gave_up"] is True
        assert st["errors"] == ["ERROR: no price since 40 s"]
        out, failed = run_module(strategy_health, dict(heartbeat_file=str(heartbeat), container=name + "-gone",
                                                       docker_host=os.environ.get("DOCKER_HOST")), capsys)
        assert failed and f"cannot read the logs of container {name}-gone" in out["msg"]
    finally:
        cont.remove(force=True)
        client.close()


def test_a_layer_is_rebuilt_only_when_its_recipe_changes(tmp_path, monkeypatch):
    """tradeops-dr rehearse's image builder against the private engine: the second build of an
    unchanged recipe keeps the image; a changed Dockerfile builds it again (its label says which)."""
    from tradeops_dr import rehearse

    client = _engine()
    client.close()
    layer = "test-recipe-" + uuid.uuid4().hex[:6]
    (tmp_path / "molecule" / "images" / layer).mkdir(parents=True)
    dockerfile = tmp_path / "molecule" / "images" / layer / "Dockerfile"
    dockerfile.write_text("ARG BASE\nFROM ${BASE}\nLABEL purpose=test\n")
    try:
        assert rehearse.build_layer(layer, tmp_path, log=lambda _line: None) == "built"
        assert rehearse.build_layer(layer, tmp_path, log=lambda _line: None) == "kept"
        dockerfile.write_text("ARG BASE\nFROM ${BASE}\nLABEL purpose=changed\n")
        assert rehearse.build_layer(layer, tmp_path, log=lambda _line: None) == "built"
        client = _engine()
        img = client.images.get(rehearse.layer_image(layer))
        assert img.labels["purpose"] == "changed" and img.labels[rehearse.RECIPE_LABEL]
    finally:
        client = _engine()
        client.images.remove(rehearse.layer_image(layer), force=True)
        client.close()


def test_a_rehearsal_removes_its_containers_before_and_after_by_the_sdk(container):
    """The rehearsals run `molecule test --destroy never` and remove the scenario's containers
    themselves (src/tradeops_dr/rehearse.py): a running container named like a platform goes, its
    absence is no error, and only the names given are touched."""
    from tradeops_dr import rehearse

    name, _cont = container
    client = _engine()
    other = client.containers.run(IMAGE, ["sleep", "300"], name=name + "-other", detach=True, network_mode="none")
    try:
        assert rehearse.remove_containers([name, "tradeops-dr-never-created"], client) == [name]
        names = {c.name for c in client.containers.list(all=True)}
        assert name not in names and other.name in names
        assert rehearse.remove_containers([name], client) == []
    finally:
        other.remove(force=True)
    assert rehearse.scenario_containers("redis_restart") == ["tradeops-dr-redis"]
