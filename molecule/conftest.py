"""Helpers of the scenarios' testinfra checks (molecule/<scenario>/tests): reads done inside the
container under test, with its own Python and client tools."""

import json

import pytest


@pytest.fixture
def get_json(host):
    """GET a URL from inside the container (its loopback) and parse the JSON answer."""
    def get(url):
        res = host.run("python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read()"
                       ".decode())' '%s'" % url)
        assert res.rc == 0, res.stderr
        return json.loads(res.stdout)
    return get


@pytest.fixture
def psql(host):
    """One query through psql inside the container (the scenarios' throw-away password and port 5432):
    its unaligned output, fields separated by a space."""
    def query(db, sql):
        res = host.run("PGPASSWORD=molecule-only-secret psql -qAt -h 127.0.0.1 -p 5432 -U tradeops -F ' ' -d %s -c \"%s\""
                       % (db, sql))
        assert res.rc == 0, res.stderr
        return res.stdout.strip()
    return query
