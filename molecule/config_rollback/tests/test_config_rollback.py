"""testinfra: the container after molecule converged config_rollback on a TOML cut in half."""

import os

import pytest

TOML = "/srv/trading/config/trading_config.toml"


def test_the_file_is_the_committed_version(host):
    committed = host.run("git -C /srv/trading show HEAD:config/trading_config.toml").stdout
    assert host.file(TOML).content_string == committed
    assert host.run("git -C /srv/trading status --porcelain").stdout.strip() == ""


def test_it_parses_with_every_required_section(host):
    res = host.run("python3 -c 'import tomllib, json; print(json.dumps(sorted(tomllib.load(open(\"%s\", \"rb\")))))'"
                   % TOML)
    assert res.rc == 0, res.stderr
    assert res.stdout.strip() == '["live", "risk", "trading"]'


def test_the_broken_file_is_kept_aside(host):
    kept = host.run("find /var/backups/tradeops-dr/config -type f -name 'trading_config.toml*'").stdout.split()
    assert len(kept) == 1, kept
    committed = host.run("git -C /srv/trading show HEAD:config/trading_config.toml").stdout
    assert host.file(kept[0]).content_string == committed[: len(committed) // 2]


def test_the_history_is_untouched(host):
    assert host.run("git -C /srv/trading log --format=%s").stdout.split("\n")[:2] == ["config v2", "config v1"]


@pytest.mark.skipif(not os.environ.get("TRADEOPS_DR_PAYLOAD_BYTECODE"),
                    reason="the payload bytecode cache is scripts/test.sh's (TRADEOPS_DR_PAYLOAD_BYTECODE)")
def test_the_modules_kept_the_bytecode_of_their_payload_in_the_container(host):
    # molecule/shared/create.yml's mounts: converge, idempotence and check ran the role's modules here
    cached = host.run("find /run/tradeops-dr-payload-bytecode -maxdepth 1 -type f -size +0").stdout.split()
    assert len(cached) > 20, cached
    assert host.file("/run/tradeops-dr-payload-bytecode").mode == 0o700
