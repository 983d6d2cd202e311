"""The package's public face: a version, lazily imported entry points, nothing heavy on import."""
import subprocess
import sys
from importlib.metadata import version

import pytest

import diffsep


def test_version_is_the_installed_one():
    assert diffsep.__version__ == version("diffsep")


@pytest.mark.parametrize("name", diffsep.__all__)
def test_every_export_resolves(name):
    assert getattr(diffsep, name) is not None


def test_import_loads_no_torch():
    code = "import sys, diffsep; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        diffsep.bogus
