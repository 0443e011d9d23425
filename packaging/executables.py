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
    """``conntrack_checks.checks.check_conntrack``, or None for a script without main()."""
    for line in (ROOT / "plugins" / executable).read_text().splitlines():
        words = line.split()
        if words[:1] == ["from"] and len(words) == 4 and words[1].startswith("conntrack_checks.") \
                and words[2:] == ["import", "main"]:
            return words[1]
    return None
