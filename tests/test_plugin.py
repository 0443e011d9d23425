"""nagios/plugin.py: the plumbing every plugin shares (ranges, perfdata numbers, the exit)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import nagiosplugin
import pytest
from conntrack_checks.nagios import plugin


@pytest.mark.parametrize("text", ["80", "10:", "~:5", "@10:20", "0.017", "-1:1"])
def test_a_nagios_range_is_taken_as_nagiosplugin_reads_it(text):
    assert plugin.nagios_range(text) == nagiosplugin.Range(text)


@pytest.mark.parametrize("text", ["", "@", "abc", "1:2:3", "5%", "20:10"])
def test_a_range_that_is_not_one_is_an_argument_error(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{text!r}"):
        plugin.nagios_range(text)


@pytest.mark.parametrize("value, text", [(True, "1"), (3, "3"), (1e20, "100000000000000000000"),
                                         (0.1234, "0.123"), (-0.0001, "0"), (2.5, "2.5")])
def test_perfdata_numbers_are_plain_decimals(value, text):
    assert plugin.fmt_number(value) == text


@pytest.mark.parametrize("spec, text, words", [
    ("80", "80", "above 80%"), ("10:", "10:", "below 10%"), ("~:5", "~:5", "above 5%"),
    ("@10:20", "@10:20", "inside 10:20%"), ("5:6", "5:6", "outside 5:6%"),
])
def test_a_range_is_written_back_and_worded_as_it_was_given(spec, text, words):
    rng = nagiosplugin.Range(spec)
    assert (plugin.fmt_range(rng), plugin.describe_violation(rng, "%")) == (text, words)


def test_name_equals_range_options_name_the_valid_names_when_wrong():
    parse = plugin.named_range({"drop"}.__contains__, "drop", allow_none=True)
    assert parse("DROP=5") == ("drop", nagiosplugin.Range("5"))
    assert parse("drop=none") == ("drop", None)
    with pytest.raises(argparse.ArgumentTypeError, match="is not NAME=RANGE with NAME drop"):
        parse("lost=5")


# --- execute: the end of every executable -------------------------------------------

@pytest.mark.parametrize("body, code, out, err", [
    ("print('x' * 200000, end='|'); sys.exit(2)", 2, "x" * 200000 + "|", ""),
    ("print('OK - fine')", 0, "OK - fine\n", ""),
    ("sys.exit(None)", 0, "", ""),
    ("sys.stdout.write('partial'); sys.exit('no such thing')", 1, "partial", "no such thing\n"),
], ids=["200k-then-exit-2", "return", "exit-none", "exit-message"])
def test_execute_flushes_and_exits_with_main_s_code(body, code, out, err):
    """plugin.execute skips the interpreter's teardown: nothing written may be lost."""
    program = ("import sys\nfrom conntrack_checks.nagios.plugin import execute\n"
               f"def main():\n    {body}\nexecute(main)\nprint('never here')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (code, out, err)


def test_execute_leaves_other_errors_to_python():
    program = ("from conntrack_checks.nagios.plugin import execute\n"
               "def main():\n    raise ValueError('bug')\nexecute(main)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 1 and "ValueError: bug" in done.stderr
