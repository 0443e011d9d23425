"""sources: one source per run, chosen from the options given."""

from __future__ import annotations

import pytest
from conntrack_checks.errors import ProbeError
from conntrack_checks.logs import sources
from conntrack_checks.logs.sources import LogOptions


def test_auto_picks_one_source(monkeypatch, tmp_path):
    opts = LogOptions("auto")
    syslog, kern = tmp_path / "syslog", tmp_path / "kern.log"
    syslog.write_text("")
    monkeypatch.setattr(sources, "AUTO_FILES",
                        (str(kern), str(tmp_path / "messages"), str(syslog)))
    assert sources.choose_source(opts) == ("file", [str(syslog)])
    kern.write_text("")
    assert sources.choose_source(opts) == ("file", [str(kern)])  # never two views
    kern.unlink()
    syslog.unlink()
    monkeypatch.setattr(sources, "JOURNAL_DIRS", (str(tmp_path / "journal"),))
    assert sources.choose_source(opts) == ("kmsg", [])
    (tmp_path / "journal" / "mid").mkdir(parents=True)
    (tmp_path / "journal" / "mid" / "system.journal").write_text("")
    assert sources.choose_source(opts) == ("journal", [])
    with pytest.raises(ProbeError, match="--logfile"):
        sources.choose_source(LogOptions("file"))
