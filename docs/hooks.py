"""mkdocs hook: generate the figures (docs/figures/*.png) before every build.

The figures are computed by docs/scripts/make_figures.py in a separate interpreter (it enables
`jax_enable_x64` and uses matplotlib's Agg backend, neither of which should leak into mkdocs).
They are regenerated when missing or older than the script or its inputs, so `mkdocs serve`
does not recompute them on every reload; a clean clone always regenerates them.
"""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.figures")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
SCRIPT = DOCS / "scripts" / "make_figures.py"
FIGURES = DOCS / "figures"
OUTPUTS = ("bode_build.png", "hsv.png", "ssm_accuracy.png")
INPUTS = (
    SCRIPT,
    DOCS / "data" / "compression.json",
    ROOT / "jaxlqo" / "ssm" / "weights" / "digits.json",
    ROOT / "tests" / "data" / "build.npz",
    ROOT / "tests" / "data" / "heat_cont.npz",
)


def _stale() -> bool:
    outputs = [FIGURES / name for name in OUTPUTS]
    if not all(p.is_file() for p in outputs):
        return True
    newest_input = max(p.stat().st_mtime for p in INPUTS)
    return min(p.stat().st_mtime for p in outputs) < newest_input


def on_pre_build(config, **kwargs):
    if not _stale():
        log.info("figures are up to date (docs/figures/)")
        return
    start = time.perf_counter()
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(FIGURES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise PluginError(f"docs/scripts/make_figures.py failed:\n{result.stdout}\n{result.stderr}")
    log.info("figures generated in %.1f s", time.perf_counter() - start)
