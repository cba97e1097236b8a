"""Server-side tools (pg_ctl, pg_waldump) live off PATH on Debian (/usr/lib/postgresql/<major>/bin):
found there, the server's major version first."""

from __future__ import annotations

import glob

import pytest

from conftest import need

from ansible_collections.tradeops.dr.plugins.module_utils import _postgres


def _tool(folder, name="pg_waldump"):
    folder.mkdir(parents=True)
    f = folder / name
    f.write_text("#!/bin/sh\n")
    f.chmod(0o755)
    return str(f)


def test_the_server_major_version_first_then_the_newest(tmp_path, monkeypatch):
    v15, v16 = _tool(tmp_path / "15" / "bin"), _tool(tmp_path / "16" / "bin")
    real_glob = glob.glob
    monkeypatch.setattr(glob, "glob", lambda pattern: [str(tmp_path / "15" / "bin"), str(tmp_path / "16" / "bin")]
                        if pattern == "/usr/lib/postgresql/*/bin" else real_glob(pattern))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert _postgres.server_binary("pg_waldump") == v16  # the newest
    assert _postgres.server_binary("pg_waldump", bin_dir=str(tmp_path / "15" / "bin")) == v15  # pg_bin_dir wins


def test_the_server_major_version_is_looked_for_first(monkeypatch):
    real = "/usr/lib/postgresql/15/bin/pg_waldump"
    if not _postgres.os.access(real, _postgres.os.X_OK):
        need("PostgreSQL 15's server package is not installed here (apt-get install postgresql-15)")
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    assert _postgres.server_binary("pg_waldump", major=15) == real


def test_missing_everywhere_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_postgres.PostgresError, match="pg_waldump not found in /usr/lib/postgresql"):
        _postgres.server_binary("pg_waldump")
