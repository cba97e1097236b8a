"""Root writing into a folder another account can write (issue 26, item 1; the compare queries and
server settings of item 4; name checks).

The attacker is a real second account (nobody): it owns the folder and plants the links with
`runuser`, as the database's or the application's account would. Each write the collection makes
there must not follow the link: the file the link points to (root's, 0600, in a folder that
account cannot even enter) keeps its content, owner and mode."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import run_module

ATTACKER = "nobody"


@pytest.fixture
def attacker_dir():
    """A folder owned by the attacker (as a data directory is the database's), inside a folder it
    can traverse; yields (folder, uid, gid)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true, yet the suite does not run as root: these tests prove root's writes")
        pytest.skip("proves what root writes: run as root")
    entry = pwd.getpwnam(ATTACKER)
    base = tempfile.mkdtemp(prefix="tradeops-sec-")
    os.chmod(base, 0o711)
    folder = Path(base) / "owned"
    folder.mkdir()
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    yield folder, entry.pw_uid, entry.pw_gid
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def victim(tmp_path):
    """A root-only file the attacker wants: its content, owner and mode must never change."""
    path = tmp_path / "root-only" / "secret"
    path.parent.mkdir(mode=0o700)
    path.write_text("root's secret\n")
    os.chmod(path, 0o600)
    return path


def plant(link: Path, target: Path) -> None:
    subprocess.run(["runuser", "-u", ATTACKER, "--", "ln", "-s", str(target), str(link)], check=True)
    assert link.is_symlink() and link.lstat().st_uid != 0


def untouched(victim: Path) -> None:
    st = victim.stat()
    assert victim.read_text() == "root's secret\n"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


def test_atomic_write_never_follows_a_planted_link(attacker_dir, victim):
    from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

    folder, uid, gid = attacker_dir
    target = folder / "postgresql.auto.conf"
    # the old temp name was <path>.tmp-<pid>: planted for this very process
    plant(Path("%s.tmp-%d" % (target, os.getpid())), victim)
    _manifest.write_text_atomic(str(target), "archive_mode = 'on'\n", 0o600, (uid, gid))
    untouched(victim)
    st = target.lstat()
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o600)
    assert target.read_text() == "archive_mode = 'on'\n"


def test_atomic_write_replaces_a_link_at_the_target_itself(attacker_dir, victim):
    from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

    folder, _uid, _gid = attacker_dir
    target = folder / "registry.yml"
    plant(target, victim)
    _manifest.write_text_atomic(str(target), "primary_feed: b\n")
    untouched(victim)
    assert not target.is_symlink() and target.read_text() == "primary_feed: b\n"
    assert not [p for p in folder.iterdir() if p.name != "registry.yml"], "a temp file was left behind"


def test_kill_switch_flag_file_never_follows_a_planted_link(attacker_dir, victim):
    from ansible_collections.tradeops.dr.plugins.module_utils import _killswitch

    folder, _uid, _gid = attacker_dir
    flag = folder / "kill_switch.flag"
    plant(Path(str(flag) + ".tmp"), victim)  # the old temp name
    _killswitch.write_flag_file(str(flag), "redis down", "ops", "INC-7", "halted", "connection refused")
    untouched(victim)
    assert '"enabled": true' in flag.read_text()


def test_service_log_and_pidfile_never_follow_a_planted_link(attacker_dir, victim):
    from ansible_collections.tradeops.dr.plugins.module_utils import _service

    folder, _uid, _gid = attacker_dir
    log, pidfile = folder / "svc.log", folder / "svc.pid"
    plant(log, victim)
    control = _service.ProcessManager(dict(name="svc", start_command="sleep 30", foreground=True, log_file=str(log),
                                           pidfile=str(pidfile)), None)
    with pytest.raises(OSError, match="Too many levels of symbolic links|refused"):
        control.start()
    untouched(victim)
    os.unlink(log)
    plant(pidfile, victim)
    control.start()
    try:
        untouched(victim)
        assert not pidfile.is_symlink() and int(pidfile.read_text()) > 0
    finally:
        control.stop()


def _pitr_params(folder: Path, **extra) -> dict:
    from ansible_collections.tradeops.dr.plugins.module_utils import _pgbackrest, _postgres
    from tradeops_dr.sandbox import free_port

    spec = _postgres.postgres_argument_spec()
    spec.update(_pgbackrest.argument_spec())
    params = {name: option.get("default") for name, option in spec.items()}
    params.update(login_host="127.0.0.1", login_port=free_port(), login_password=None, os_user=ATTACKER,
                  restore_dir=str(folder / "copy"), spare_port=free_port(), database="trading", socket_dir=None,
                  server_settings={}, required_tables=[], min_row_counts={}, compare_queries={}, ready_timeout=5)
    params.update(extra)
    return params


class _Module:
    check_mode = False


def test_pitr_restore_log_never_follows_a_planted_link(attacker_dir, victim):
    """Before any restore, the log beside the copy is created O_EXCL|O_NOFOLLOW: the database's
    account planted a link at its name, and the restore stops there, nothing made."""
    from ansible_collections.tradeops.dr.plugins.modules import pg_pitr

    folder, _uid, _gid = attacker_dir
    plant(folder / "copy.log", victim)
    with pytest.raises(pg_pitr.Refused, match=r"cannot create the restore log .*copy\.log.*nothing was changed"):
        pg_pitr.restore(_Module(), _pitr_params(folder), dict(backup="20261205-000000F"))
    untouched(victim)
    assert not (folder / "copy").exists()


def test_pitr_compare_query_cannot_write(pg):
    """Item 4: the session was read-only, but SET TRANSACTION READ WRITE in a second statement
    emptied the live table and the copy was reported verified."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _postgres
    from ansible_collections.tradeops.dr.plugins.modules import pg_pitr

    pg.sql("postgres", "CREATE DATABASE pitr_cmp")
    pg.sql("pitr_cmp", "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 5)")
    conn = pg_pitr._read_only(pg.connect("pitr_cmp"))
    try:
        with pytest.raises(_postgres.PostgresError, match="more than one statement"):
            pg_pitr._compare(conn, "rows", "SET TRANSACTION READ WRITE; DELETE FROM t; SELECT count(*) FROM t")
        for one in ("SET TRANSACTION READ WRITE", "DELETE FROM t RETURNING 1",
                    "WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d"):
            with pytest.raises(_postgres.PostgresError, match="compare query rows failed"):
                pg_pitr._compare(conn, "rows", one)
        assert pg_pitr._compare(conn, "rows", "SELECT count(*) FROM t;") == 5
        assert pg_pitr._compare(conn, "rows", "SELECT count(*) FROM t WHERE 'a;b' <> ''") == 5
    finally:
        conn.close()
    assert pg.sql("pitr_cmp", "SELECT count(*) FROM t")[0][0] == 5


@pytest.mark.parametrize("args, refused", [
    (dict(compare_queries={"rows": "SELECT 1; DELETE FROM t"}), "compare query rows refused: it holds more than one"),
    (dict(server_settings={"work_mem;id": "4MB"}), "server setting 'work_mem;id'='4MB' refused"),
    (dict(server_settings={"work_mem": "4MB\n-c x=1"}), "refused: a name is lower-case"),
    (dict(database="trading$HOME"), "database name 'trading\\$HOME' refused"),
    (dict(database="trading\n"), "database name 'trading\\\\n' refused"),
])
def test_pitr_refuses_before_it_runs_anything(args, refused, capsys):
    from ansible_collections.tradeops.dr.plugins.modules import pg_pitr

    base = dict(action="restore", stanza="main", config="/nonexistent/pgbackrest.conf", restore_dir="/nonexistent/copy", spare_port=1, database="trading")
    out, failed = run_module(pg_pitr, dict(base, **args), capsys)
    assert failed, out
    assert re.search(refused, out["msg"]), out["msg"]
    assert out.get("refused"), out


def test_server_settings_reach_no_shell(tmp_path):
    """pg_ctl -o goes through /bin/sh: a value with $(...) is a word, never a command."""
    from ansible_collections.tradeops.dr.plugins.modules import pg_pitr

    proof = tmp_path / "ran"
    settings = {"work_mem": "4MB$(touch %s)" % proof, "search_path": "a, 'b'"}
    opts = pg_pitr.start_options(5999, str(tmp_path / "sock dir"), settings)
    words = subprocess.run(["/bin/sh", "-c", 'printf "%s\\n" ' + opts], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert not proof.exists()
    assert words == ["-p", "5999", "-k", str(tmp_path / "sock dir"), "-c", "listen_addresses=127.0.0.1", "-c",
                     "archive_mode=off", "-c", "recovery_init_sync_method=syncfs", "-c", "search_path=a, 'b'", "-c",
                     "work_mem=4MB$(touch %s)" % proof]


def test_git_in_another_accounts_tree_runs_as_that_account_without_hooks(attacker_dir, tmp_path):
    """Issue 26 item 6: release rollback ran git as root in the application's tree; after git's own
    "dubious ownership" hint was followed, the owner's post-checkout hook ran as uid 0. git now runs as
    the tree's owner, with hooks and fsmonitor off."""
    from ansible_collections.tradeops.dr.plugins.module_utils import _vcs

    folder, uid, _gid = attacker_dir
    repo = folder / "app"
    proof = folder / "ran-as"

    def owner(*argv):
        subprocess.run(["runuser", "-u", ATTACKER, "--", "env", "HOME=" + str(folder), "git", "-c", "user.name=app",
                        "-c", "user.email=app@example.invalid", *argv], cwd=folder if argv[0] == "init" else repo,
                       check=True, capture_output=True)

    owner("init", "-q", str(repo))
    for version in ("1", "2"):
        (folder / "release").write_text(version)
        subprocess.run(["runuser", "-u", ATTACKER, "--", "cp", str(folder / "release"), str(repo / "VERSION")],
                       check=True)
        owner("add", "VERSION")
        owner("commit", "-q", "-m", "release " + version)
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\nid -u >> %s\n" % proof)
    os.chmod(hook, 0o755)
    os.chown(hook, uid, -1)
    # what git tells root to do in a tree it does not own ("dubious ownership"), done
    subprocess.run(["git", "config", "--global", "--add", "safe.directory", str(repo)], check=True,
                   env=dict(os.environ, HOME=str(tmp_path)))
    _vcs.run(["git", "checkout", "--quiet", "--detach", "HEAD~1"], cwd=str(repo), env=dict(os.environ, HOME=str(tmp_path)))
    assert (repo / "VERSION").read_text() == "1"
    assert not proof.exists(), "the tree's hook ran (as %s)" % proof.read_text().split()
    # what git wrote stays the tree owner's
    assert (repo / "VERSION").stat().st_uid == uid and (repo / ".git" / "HEAD").stat().st_uid == uid


def test_redis_check_aof_fix_runs_as_the_owner_of_the_aof_folder(attacker_dir):
    """redis-check-aof --fix truncates files: as root in the Redis account's folder it would truncate
    whatever a planted link points to. It runs as that folder's owner (root keeps it where root owns it)."""
    from ansible_collections.tradeops.dr.plugins.modules import redis_aof

    folder, _uid, _gid = attacker_dir
    seen = []

    class Module:
        params = dict(check_command="redis-check-aof")

        @staticmethod
        def run_command(cmd, data=None, binary_data=False):
            seen.append(cmd)
            return 0, "", ""

    redis_aof.run_check(Module(), str(folder / "appendonly.aof.manifest"), fix=True)
    assert seen[-1] == ["runuser", "-u", ATTACKER, "--", "redis-check-aof", "--fix",
                        str(folder / "appendonly.aof.manifest")]
    redis_aof.run_check(Module(), "/root/appendonly.aof", fix=True)  # a root-owned folder: as root
    assert seen[-1] == ["redis-check-aof", "--fix", "/root/appendonly.aof"]
