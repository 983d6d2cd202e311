"""tools/setup.sh (behind make demo, make test and .ci/run) does only what is missing: run against
a stand-in venv whose python and diffsep log what they are asked and answer what is installed, and
a stand-in nvidia-smi that finds a GPU or not."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "setup.sh"
STAMP = ".diffsep-pyproject.toml"

FAKE_PYTHON = """#!/bin/sh
# a venv's python: logs its arguments; the what-is-missing probe (-I -) answers $MISSING
echo "python $*" >> "$LOG"
if [ "$1" = "-I" ]; then cat > /dev/null; echo "$MISSING"; fi
"""
FAKE_DIFFSEP = '#!/bin/sh\necho "diffsep $*" >> "$LOG"\n'


def make_venv(tmp: Path) -> Path:
    bin_ = tmp / "venv" / "bin"
    bin_.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("diffsep", FAKE_DIFFSEP)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    return tmp / "venv"


def run(tmp: Path, *args, missing="", gpu=False, torch_spec=None) -> list[str]:
    """Run the script; -> the commands it gave the stand-ins."""
    tools = tmp / "path"
    tools.mkdir(exist_ok=True)
    smi = tools / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nexit {0 if gpu else 9}\n")  # a driver that finds no GPU fails
    smi.chmod(0o755)
    log = tmp / "log"
    log.write_text("")
    env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "VENV": str(tmp / "venv"), "LOG": str(log),
           "MISSING": missing, **({"TORCH_SPEC": torch_spec} if torch_spec else {})}
    out = subprocess.run(["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in log.read_text().splitlines() if not line.startswith("python -I")]


pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")


@pytest.mark.slow
def test_installs_only_what_is_missing(tmp_path):
    venv = make_venv(tmp_path)
    assert run(tmp_path, missing="torch diffsep") == [
        "python -m pip install torch==2.13.0", 'python -m pip install -e .[test]']
    assert (venv / STAMP).read_bytes() == (ROOT / "pyproject.toml").read_bytes()
    assert run(tmp_path) == []                                   # the second run installs nothing
    assert run(tmp_path, missing="diffsep") == ["python -m pip install -e .[test]"]  # not from here
    (venv / STAMP).write_text("[project]\nname = 'older'\n")     # pyproject.toml changed since
    assert run(tmp_path) == ["python -m pip install -e .[test]"]
    assert run(tmp_path) == []


@pytest.mark.slow
def test_torch_build_follows_the_machine_and_actions_run_the_demo_and_the_suite(tmp_path):
    venv = make_venv(tmp_path)
    (venv / STAMP).write_bytes((ROOT / "pyproject.toml").read_bytes())
    assert run(tmp_path, missing="torch", gpu=True) == ["python -m pip install torch"]  # the CUDA build
    assert run(tmp_path, missing="torch", gpu=True, torch_spec="torch==2.13.0") == [
        "python -m pip install torch==2.13.0"]
    assert run(tmp_path, gpu=True) == []                          # an installed torch is kept
    assert run(tmp_path, "demo") == ["diffsep separate --demo -o out/demo"]
    assert run(tmp_path, "demo", "elsewhere") == ["diffsep separate --demo -o elsewhere"]
    assert run(tmp_path, "test", "-k", "sde") == ["python -m pytest -q -n auto --maxprocesses=4 -k sde"]


def test_the_readme_ci_and_make_test_run_one_test_command():
    """The README's test command is what .ci/run runs and what `tools/setup.sh test` (make test) runs."""
    import re
    root = Path(__file__).resolve().parents[1]
    readme = re.findall(r"^python -m pytest[^\n`]*$", (root / "README.md").read_text(), re.M)
    ci = [ln.split("#")[0].strip() for ln in (root / ".ci" / "run").read_text().splitlines()
          if ln.startswith("python -m pytest")]
    setup = re.findall(r'test\) exec "\$VPY" (-m pytest[^"]*) "\$@"', (root / "tools" / "setup.sh").read_text())
    assert len(readme) == 1 and ci == readme and setup == [readme[0][len("python "):]]
