"""The archived WAL of a stanza checked for gaps (what pg_pitr refuses on before any change, and what
the pgbackrest module's verify names): per timeline, across a log boundary, .partial files ignored."""

from __future__ import annotations

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _pgbackrest


def _archive(tmp_path, names):
    base = tmp_path / "archive" / "trading" / "15-1"
    for name in names:
        folder = base / name[:16]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}-{'a' * 40}.gz").write_bytes(b"x")
    return _pgbackrest.archived_segments(str(tmp_path), "trading")


def test_a_gap_is_named_and_a_log_boundary_is_not_a_gap(tmp_path):
    names = ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000",
             "000000010000000100000002"]
    segments = _archive(tmp_path, names)
    assert _pgbackrest.missing_after(segments, names[0]) == ["000000010000000100000001"]
    assert _pgbackrest.missing_after(segments, names[2]) == ["000000010000000100000001"]
    assert _pgbackrest.missing_segments(segments, names[0], names[2]) == []


def test_each_later_timeline_is_checked_from_its_first_segment(tmp_path):
    names = ["000000010000000000000003", "000000010000000000000004", "000000020000000000000004",
             "000000020000000000000006"]
    segments = _archive(tmp_path, names)
    (tmp_path / "archive" / "trading" / "15-1" / "0000000200000000" / "000000020000000000000005.partial.gz") \
        .write_bytes(b"x")
    assert _pgbackrest.missing_after(segments, names[0]) == ["000000020000000000000005"]
    assert _pgbackrest.missing_after(segments, "000000020000000000000006") == []


def test_a_configuration_value_with_a_line_break_is_refused():
    """Issue 26: values went into pgBackRest's configuration file as they were; a line break added settings."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _pgbackrest

    args = dict(stanza="main", repo_path="/var/lib/pgbackrest", pg_path="/var/lib/postgresql/15/main", pg_port=5432,
                pg_socket_path=None, pg_user="postgres", retention_full=2, compress_type="zst",
                log_path="/etc/pgbackrest/log", lock_path="/etc/pgbackrest/lock", process_max=1)
    assert "repo1-path=/var/lib/pgbackrest\n" in _pgbackrest.config_text(**args)
    with pytest.raises(_pgbackrest.PgBackRestError, match="repo_path .* refused: a configuration value holds no line"):
        _pgbackrest.config_text(**{**args, "repo_path": "/x\nrepo1-host=attacker.example"})


def test_a_pgbackrest_failure_keeps_the_warning_that_says_why():
    """Issue 31: when pgBackRest could not connect (pg_hba), the stanza step failed with only "[056] unable to
    find primary cluster"; the reason was in the WARN line before it."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _pgbackrest

    out = ("2026-12-05 08:20:01.123 P00   WARN: unable to check pg1: [DbConnectError] unable to connect to "
           "'dbname='postgres' port=5432': connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: "
           "FATAL:  no pg_hba.conf entry for host \"[local]\", user \"postgres\", database \"postgres\", no encryption\n"
           "2026-12-05 08:20:01.124 P00  ERROR: [056]: unable to find primary cluster - cannot proceed\n")
    text = _pgbackrest.error_text("", out)
    assert "no pg_hba.conf entry" in text and "[056]: unable to find primary cluster" in text
    assert text.index("no pg_hba.conf entry") < text.index("[056]")
    assert _pgbackrest.error_text("a\nb\nc\nd\n", "") == "b c d"  # no ERROR line: the last lines
