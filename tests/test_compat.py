"""fader.eval.compat: torchvision imports next to a CPU-only torch, and only then is patched."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_torchvision_imports_and_the_workaround_acts_only_when_the_extension_failed() -> None:
    out = run(
        "from fader.eval import compat\n"
        "tv = compat.import_torchvision()\n"
        "import torchvision.models\n"  # the pure-Python part pytorch-fid needs
        "print(tv.extension._has_ops(), compat._library is not None)"
    )
    has_ops, patched = out.split()
    assert patched == str(has_ops == "False"), out  # patched exactly when the extension is absent


def test_other_import_errors_are_not_hidden() -> None:
    out = run(
        "import builtins\n"
        "real = builtins.__import__\n"
        "def fail(name, *a, **k):\n"
        "    if name == 'torchvision':\n"
        "        raise RuntimeError('something else broke')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fail\n"
        "from fader.eval import compat\n"
        "try:\n"
        "    compat.import_torchvision()\n"
        "except RuntimeError as error:\n"
        "    print(error, compat._library)\n"
    )
    assert out == "something else broke None"
