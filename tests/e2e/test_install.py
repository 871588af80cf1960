"""Installing podvisor puts one name on the user's import path: `podvisor`.

Users install podvisor into their own project's virtualenv for the pytest plugin; a bare top-level
`apps` or `aggregator` package would collide with theirs.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with `pip install .` of a clean copy of the checkout (dependencies come
    from this interpreter's site-packages, so nothing is downloaded)."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                          "--no-build-isolation", "--no-index", "-q", str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return env_dir


def installed_files(venv: Path) -> list[str]:
    record = next(venv.glob("lib/python*/site-packages/podvisor-*.dist-info/RECORD"))
    return [line.split(",", 1)[0] for line in record.read_text().splitlines()]


def test_pip_install_puts_no_top_level_package_but_podvisor(venv):
    tops = {path.split("/", 1)[0] for path in installed_files(venv)
            if not path.startswith(("../", "podvisor-")) and not path.endswith(".dist-info")}
    assert tops == {"podvisor"}, f"pip install . put these on the import path: {sorted(tops)}"


def test_the_installed_package_runs_from_anywhere_with_its_data_files(venv, tmp_path):
    python = str(venv / "bin" / "python")
    probe = ("import podvisor, podvisor.apps.user, podvisor.aggregator.main, podvisor.sidecars.logger.main, "
             "podvisor.supervisord.controller.main, podvisor.testing.plugin, pathlib; "
             "print(podvisor.__file__); "
             "from podvisor.supervisord.render.conf import DEFAULT_SPEC; assert DEFAULT_SPEC.is_file(); "
             "import podvisor.aggregator.views.ui as ui; "
             "assert (pathlib.Path(ui.__file__).parent.parent / 'static' / 'logs.html').is_file()")
    out = subprocess.run([python, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert str(venv) in out.stdout, f"imported podvisor from {out.stdout.strip()}, not the venv"
    for script in ("podctl", "podvisor-render", "podvisor-controller", "podvisor-logger"):
        assert (venv / "bin" / script).exists(), script
    help_out = subprocess.run([str(venv / "bin" / "podctl"), "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0 and "podctl" in help_out.stdout, help_out.stderr
