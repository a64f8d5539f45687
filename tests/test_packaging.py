"""The built wheel: what pyproject.toml promises is in it (py.typed, every module, the runtime dependencies)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_py_typed_every_module_and_declares_h11(tmp_path):
    # built from a copy: a build in the checkout would write build/ and *.egg-info next to other runs' ones
    src = tmp_path / "src"
    shutil.copytree(ROOT / "claude_otel", src / "claude_otel", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "out").glob("claude_otel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(metadata).decode())
    assert "claude_otel/py.typed" in names  # PEP 561: type checkers read the package's annotations
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "claude_otel").rglob("*.py")}
    assert modules - names == set() and "claude_otel/demo/__main__.py" in modules
    # the simulator (part of the package: `claude-otel simulate`, the demo) speaks HTTP with h11 at run time
    requires = [r.split(";")[0].replace(" ", "") for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert any(r.startswith("h11") for r in requires), requires
