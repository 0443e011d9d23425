"""The pyproject RPM macros' work, for macros.debian (an RPM built on Debian only).

    pyproject_debian.py install BUILDROOT SITELIB BINDIR WHEEL
    pyproject_debian.py save-files BUILDROOT SITELIB LISTFILE MODULE...
    pyproject_debian.py check-import BUILDROOT SITELIB
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def install(buildroot: str, sitelib: str, bindir: str, wheel: str) -> None:
    from installer import install as install_wheel
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scheme = {"purelib": sitelib, "platlib": sitelib, "scripts": bindir, "data": "/usr",
              "headers": "/usr/include"}
    destination = SchemeDictionaryDestination(scheme, interpreter="/usr/bin/python3",
                                              script_kind="posix", destdir=buildroot)
    with WheelFile.open(wheel) as source:
        install_wheel(source, destination, {"INSTALLER": b"rpm"})


def save_files(buildroot: str, sitelib: str, listfile: str, *modules: str) -> None:
    """%files lines: each module's directory and the dist-info (as %pyproject_save_files)."""
    root = Path(buildroot + sitelib)
    lines = [f"{sitelib}/{module}/" for module in modules]
    lines += [f"{sitelib}/{info.name}/" for info in sorted(root.glob("*.dist-info"))]
    Path(listfile).write_text("\n".join(lines) + "\n")


def check_import(buildroot: str, sitelib: str) -> None:
    """Import every module installed in the buildroot (as %pyproject_check_import)."""
    path = buildroot + sitelib
    sys.path.insert(0, path)
    for info in Path(path).iterdir():
        if info.is_dir() and (info / "__init__.py").exists():
            package = importlib.import_module(info.name)
            for module in pkgutil.walk_packages(package.__path__, info.name + "."):
                importlib.import_module(module.name)
                print("imported", module.name)


if __name__ == "__main__":
    commands = {"install": install, "save-files": save_files, "check-import": check_import}
    commands[sys.argv[1]](*sys.argv[2:])
