"""scripts/test_times.py: the order it writes for the pytest-xdist workers (tests/file_durations.json)."""

from __future__ import annotations

from conftest import load_script

test_times = load_script("test_times")


def line(file: str, total: float, waiting: float = 0.0) -> dict:
    return {"file": file, "total": total, "categories": {"playbook": total - waiting, "waiting": waiting}}


def test_a_file_that_sleeps_goes_before_a_busier_one_of_the_same_length():
    lines = [line("busy.py", 100.0), line("busy.py", 80.0), line("sleepy.py", 170.0, waiting=117.0),
             line("short.py", 5.0)]
    totals = test_times.file_totals(lines)
    assert list(totals) == ["sleepy.py", "busy.py", "short.py"]
    assert totals == {"sleepy.py": 287.0, "busy.py": 180.0, "short.py": 5.0}
