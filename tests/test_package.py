"""The package as a user installs it: public names, light import, command line, type information."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wsgimon


def test_all_is_honest() -> None:
    for name in wsgimon.__all__:
        assert hasattr(wsgimon, name), name
    public = {name for name in vars(wsgimon) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(wsgimon, name)).__name__ == "module"}
    assert public - modules <= set(wsgimon.__all__)


def test_import_loads_no_framework_scheduler_or_database_driver() -> None:
    modules = "('flask', 'apscheduler', 'httpx', 'psycopg')"
    code = f"import sys, wsgimon; print(sorted(m for m in {modules} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_command_line_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsgimon", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"wsgimon {wsgimon.__version__}"
    script = Path(sys.executable).with_name("wsgimon")
    if script.exists():
        assert subprocess.run([str(script), "--version"], capture_output=True, text=True).stdout == out


def test_type_information_ships() -> None:
    assert (Path(wsgimon.__file__).parent / "py.typed").exists()
