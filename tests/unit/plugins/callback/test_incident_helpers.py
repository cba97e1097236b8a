"""The incident callback's handling of values from outside: the incident id as a file name and as Markdown,
URLs with credentials in its warnings (issue 26)."""

from __future__ import annotations

import os

from ansible_collections.tradeops.dr.plugins.callback.incident import file_stem, md_text, redact_url
from conftest import loaded_after


def test_a_long_or_odd_incident_id_makes_a_bounded_file_name(tmp_path):
    long_id = "INC-" + "x" * 300  # wrote no record and sent no notification: File name too long
    stem = file_stem(long_id)
    assert len(stem) <= 64 + 11 and stem.startswith("INC-xxx")
    (tmp_path / (stem + "_20261205T000000Z.json")).write_text("{}")  # the file system takes it
    assert file_stem("INC-42") == "INC-42"
    assert file_stem("INC-" + "x" * 301) != stem  # two long ids never share a record
    assert not file_stem("../../etc/passwd").startswith(".") and os.sep not in file_stem("../../etc/passwd")
    assert file_stem("INC 1") != file_stem("INC_1")  # a changed id carries the digest of the whole id


def test_an_incident_id_cannot_inject_markdown():
    text = md_text("INC-1\n# Approved by the CEO\n| fake | row |<script>")
    assert "\n" not in text and not text.startswith("#") and "\\# Approved" in text
    assert "\\| fake \\| row \\|" in text and "<script>" not in text


def test_urls_lose_their_credentials_in_warnings():
    msg = "HTTP Error 401 for https://ops:s3cret@journal.example/api/v1/pms/journal"
    assert redact_url(msg) == "HTTP Error 401 for https://***@journal.example/api/v1/pms/journal"
    assert redact_url("https://journal.example/x") == "https://journal.example/x"


def test_loading_the_callback_leaves_the_http_client_unloaded():
    """Every ansible-playbook start loads the callback: ansible.module_utils.urls (ssl, http.client) cost 42 ms of each;
    it is imported when a record is posted to a Decision Journal, not before (issue 24)."""
    loaded = loaded_after(["ansible.plugins.callback", "ansible_collections.tradeops.dr.plugins.callback.incident"],
                          ["ansible.module_utils.urls", "ssl"])
    assert loaded == {"ansible.module_utils.urls": False, "ssl": False}, loaded
