"""The QuestDB the sandbox and the tests start (tradeops_dr.builds): a small server's JVM options, and the
class-data archive used only when it is this checkout's own - the JVM loads code from it."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tradeops_dr import builds
from tradeops_dr.sandbox import processes


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A checkout whose .state/servers holds a jar and an archive made after it."""
    monkeypatch.setattr(builds, "project_root", lambda: tmp_path)
    servers = tmp_path / ".state" / "servers"
    servers.mkdir(parents=True)
    jar = servers / f"questdb-{builds.QUESTDB_VERSION}.jar"
    jar.write_bytes(b"jar")
    archive = builds.questdb_archive()
    archive.write_bytes(b"jsa")
    archive.chmod(0o644)
    java = os.path.realpath(shutil.which("java") or "/bin/sh")
    newest = max(jar.stat().st_mtime, os.stat(java).st_mtime)
    os.utime(archive, (newest + 10, newest + 10))
    return jar, archive


def _uses(command):
    return [o for o in command if o.startswith("-XX:SharedArchiveFile=")]


def test_the_small_server_options_and_the_archive_when_it_fits(installed, tmp_path):
    jar, archive = installed
    cmd = builds.questdb_command(jar, tmp_path / "root")
    assert cmd[:4] == ["java", "-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    assert cmd[-4:] == ["-jar", str(jar), "-d", str(tmp_path / "root")]
    assert _uses(cmd) == [f"-XX:SharedArchiveFile={archive}"]


def test_no_archive_another_account_can_write(installed, tmp_path):
    jar, archive = installed
    archive.chmod(0o664)
    assert _uses(builds.questdb_command(jar, tmp_path / "root")) == []


def test_no_archive_older_than_the_jar(installed, tmp_path):
    jar, archive = installed
    os.utime(jar, (time.time() + 3600, time.time() + 3600))
    assert _uses(builds.questdb_command(jar, tmp_path / "root")) == []


def test_no_archive_for_a_jar_from_elsewhere(installed, tmp_path):
    _jar, _archive = installed
    other = tmp_path / "elsewhere" / "questdb.jar"
    other.parent.mkdir()
    other.write_bytes(b"jar")
    assert _uses(builds.questdb_command(other, tmp_path / "root")) == []


def test_making_the_archive_asks_for_it_at_exit(installed, tmp_path):
    jar, _archive = installed
    made = tmp_path / "x.jsa"
    cmd = builds.questdb_command(jar, tmp_path / "root", archive_at_exit=made)
    assert f"-XX:ArchiveClassesAtExit={made}" in cmd and _uses(cmd) == []


def test_waiting_for_a_server_checks_at_least_every_quarter_second(monkeypatch):
    """The cap was a second: a server ready just after a check waited up to a second more, every start."""
    clock = [0.0]
    sleeps = []
    monkeypatch.setattr(processes.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(processes.time, "sleep", lambda s: (sleeps.append(s), clock.__setitem__(0, clock[0] + s)))
    processes.wait_for(lambda: (clock[0] >= 1.6, "refused"), 60, "a server")
    assert 1.6 <= clock[0] <= 1.85 and max(sleeps) == pytest.approx(0.25)
