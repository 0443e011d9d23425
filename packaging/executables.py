"""The executables the packages ship, and the library module behind each.

setup.cfg's ``scripts`` is the list; each script in plugins/ runs the main()
of one library module (``from conntrack_checks.checks.check_conntrack import
main``). The man pages and the zipapp's dispatch table are built from this.
"""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def executables() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return [Path(line).name for line in config["options"]["scripts"].split()]


def module_name(executable: str):
    """The module whose main() the script runs: ``conntrack_checks.checks.check_conntrack``.

    ``from conntrack_checks.munin import run`` (then ``run.main()``) names
    ``conntrack_checks.munin.run``. None for a script that does neither.
    """
    for line in (ROOT / "plugins" / executable).read_text().splitlines():
        words = line.split()
        if words[:1] != ["from"] or len(words) < 4 or not words[1].startswith("conntrack_checks."):
            continue
        if words[2:4] == ["import", "main"]:
            return words[1]
        if words[2] == "import" and len(words) >= 4 and words[3] != "main" \
                and f"sys.exit({words[3]}.main())" in (ROOT / "plugins" / executable).read_text():
            return f"{words[1]}.{words[3]}"
    return None
