"""The how-to guides' examples (docs/examples/*.py) run and pass their own assertions.

Each example is the exact code its docs page shows (included with pymdownx.snippets), run as
a user would run it: `python docs/examples/<name>.py` in a fresh interpreter.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py"))


def test_examples_exist():
    guides = {"regulariser", "vmap_layers", "property_testing", "slicot", "compress_ssm"}
    assert guides | {"getting_started"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_runs(name):
    if name == "compress_ssm":
        pytest.importorskip("sklearn")  # load_digits_sequences needs the `ssm` extra
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=EXAMPLES.parents[1],
    )
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout}\n{result.stderr}"
