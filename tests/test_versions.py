"""One version: lib/conntrack_checks/__init__.py's __version__; the packages' changelogs agree."""

from __future__ import annotations

from pathlib import Path

from conntrack_checks import __version__

REPO = Path(__file__).resolve().parents[1]


def test_setup_cfg_takes_the_version_from_the_library():
    lines = (REPO / "setup.cfg").read_text().splitlines()
    assert "version = attr: conntrack_checks.__version__" in lines


def test_the_debian_changelog_is_at_the_library_version():
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    package, version = first.split()[:2]
    assert package == "conntrack-checks"
    assert version.strip("()").rsplit("-", 1)[0] == __version__, first


def test_news_says_what_this_version_brought():
    lines = (REPO / "NEWS").read_text().splitlines()
    headings = [line for number, line in enumerate(lines[:-1])
                if lines[number + 1].startswith("---") and line]
    assert headings[0].split()[0] == __version__, headings


def spec() -> list[str]:
    return (REPO / "packaging" / "rpm" / "nagios-plugins-conntrack-checks.spec").read_text() \
        .splitlines()


def test_the_rpm_spec_and_its_changelog_are_at_the_library_version():
    lines = spec()
    assert f"Version:        {__version__}" in lines
    entry = lines[lines.index("%changelog") + 1]
    assert entry.startswith("* ") and entry.rsplit(" - ", 1)[1].rsplit("-", 1)[0] == __version__


def test_the_debian_and_rpm_changelogs_agree_on_the_release():
    debian = (REPO / "debian" / "changelog").read_text().splitlines()[0].split()[1].strip("()")
    lines = spec()
    rpm = lines[lines.index("%changelog") + 1].rsplit(" - ", 1)[1]
    release = next(line.split()[1] for line in lines if line.startswith("Release:"))
    assert rpm == debian  # 0.1.0-1 in both
    assert release.startswith(rpm.rsplit("-", 1)[1])
