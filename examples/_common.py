"""What every chapter example shares: the ``--quick`` / ``--out`` command line and figure saving.

Each ``chNN_*.py`` script makes the figures of chapter NN of the tutorial (``docs/``) and names
them ``chNN-*``; run without ``--quick`` it rewrites the committed figures in ``docs/images/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the examples never open a window

from tinygrad_edu.viz.plots import save_figure  # noqa: E402  (after choosing the backend)

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def parse_args(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast run (seconds), for tests and a first look")
    parser.add_argument("--out", type=Path, default=DOCS_IMAGES, help="where the figures go (default: docs/images/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def save(fig, out: Path, name: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``out/name`` without a timestamp (so reruns give the same file) and close it."""
    import matplotlib.pyplot as plt

    path = out / name
    metadata = {"Date": None} if path.suffix == ".svg" else {}
    save_figure(fig, path, dpi=dpi, metadata=metadata)
    plt.close(fig)
    print(f"wrote {path}")
    return path
