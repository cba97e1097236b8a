"""scripts/cpu_report.py: the kernel's acct_v3 records read back, and the CPU of a run split into ansible-playbook's
controllers, workers and modules (by process ancestry, pids reused) and what ran outside the runs."""

from __future__ import annotations

from conftest import load_script

cpu_report = load_script("cpu_report")


def comp(ticks: int) -> int:
    """ticks as comp_t (13-bit mantissa, base-8 exponent), as the kernel encodes them."""
    exp = 0
    while ticks > 0x1FFF:
        ticks >>= 3
        exp += 1
    return (exp << 13) | ticks


def record(comm: str, pid: int, ppid: int, start: int, seconds: float, cpu: float, fork: bool = False) -> bytes:
    ticks = int(round(cpu * 100))
    return cpu_report.RECORD.pack(0x01 if fork else 0, 3, 0, 0, 0, 0, pid, ppid, start, seconds * 100.0,
                                  comp(ticks), 0, 0, 0, 0, 0, 0, 0, comm.encode()[:16])


def test_comp_t_as_the_kernel_encodes_it():
    assert cpu_report.comp_t(comp(150)) == 150.0
    assert cpu_report.comp_t(comp(100000)) == 100000 >> 6 << 6  # 3 bits of the mantissa lost per exponent step
    assert cpu_report.comp_t((2 << 13) | 5) == 5 * 64


def test_a_run_is_split_into_controller_workers_and_modules_and_attributed_to_who_started_it(tmp_path):
    t = 1_800_000_000
    recs = [
        # ended first: a module (python) below a worker of the run started by pytest's worker, then the worker
        record("sh", 300, 201, t + 2, 1, 0.01),
        record("python", 301, 300, t + 2, 1, 0.40),
        record("ansible-playboo", 201, 200, t + 2, 1, 0.05, fork=True),
        record("ansible-playboo", 202, 200, t + 3, 1, 0.03, fork=True),
        record("ansible-playboo", 200, 100, t + 1, 5, 1.20),
        # a postgres backend outside any run; a pid reused later by a run of molecule's
        record("postgres", 400, 50, t + 1, 3, 0.30),
        record("ansible-playboo", 400, 500, t + 20, 2, 0.70),
        record("molecule", 500, 1, t + 10, 30, 2.00),
        record("python", 100, 1, t, 60, 5.00),  # pytest's worker
    ]
    path = tmp_path / "pacct"
    path.write_bytes(b"".join(recs))
    got = cpu_report.read(str(path))
    assert [r["comm"] for r in got][:3] == ["sh", "python", "ansible-playboo"] and got[2]["fork"] and not got[4]["fork"]
    assert abs(sum(r["cpu"] for r in got) - 9.69) < 1e-6
    summary = cpu_report.summarise(got)
    assert summary["runs"] == 2 and summary["processes"] == 9
    cpu = {kind: round(c, 2) for kind, (c, _n) in summary["parts"].items()}
    count = {kind: n for kind, (_c, n) in summary["parts"].items()}
    assert cpu == {"controllers": 1.9, "workers": 0.08, "modules": 0.4, "the rest below a run": 0.01}, cpu
    assert count == {"controllers": 2, "workers": 2, "modules": 1, "the rest below a run": 1}, count
    # pid 400 was a postgres backend, then (reused) molecule's run: each counted where it belongs
    assert {k: (n, round(c, 2)) for k, (n, c) in summary["starters"].items()} == \
        {"python": (1, 1.69), "molecule": (1, 0.7)}, summary["starters"]
    assert dict(summary["outside"]) == {"postgres": 0.3, "molecule": 2.0, "python": 5.0}
    text = "\n".join(cpu_report.report(summary))
    assert "ansible-playbook: 2 runs, 2 CPU-s (25 %)" in text
    assert "runs started by: python 1 (2 CPU-s), molecule 1" in text


def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "pacct"
    path.write_bytes(record("x", 1, 0, 0, 1, 0.1)[:1] + b"\x02" + record("x", 1, 0, 0, 1, 0.1)[2:])
    try:
        cpu_report.read(str(path))
    except SystemExit as exc:
        assert "acct_v3" in str(exc)
    else:
        raise AssertionError("a v2 record was read as v3")
