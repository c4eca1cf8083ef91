"""``tinygrad-edu tutorial``: write the tutorial's chapters as Jupyter notebooks into a folder."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..tutorial import EditedNotebooksError, write_notebooks
from ._common import CLIError

DEFAULT_FOLDER = Path("tinygrad-edu-tutorial")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "tutorial", help="write the tutorial's chapters as Jupyter notebooks",
        description="Write one Jupyter notebook per chapter of the tutorial into a folder, then say how to "
                    "open them. Notebooks you edited there are not overwritten without --force; "
                    "notebooks you only ran are left as they are.")
    parser.add_argument("--out", type=Path, default=DEFAULT_FOLDER, metavar="DIR",
                        help=f"the folder for the notebooks (default: ./{DEFAULT_FOLDER})")
    parser.add_argument("--force", action="store_true", help="overwrite notebooks you edited in DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = write_notebooks(args.out, force=args.force)
    except EditedNotebooksError as err:
        raise CLIError(str(err)) from None
    total = len(result.written) + len(result.unchanged)
    kept = f" ({len(result.unchanged)} already up to date)" if result.unchanged else ""
    print(f"wrote {len(result.written)} of {total} notebooks to {args.out}{kept}")
    print("To open them: pip install jupyterlab, then:")
    print(f"  jupyter lab {shlex.quote(str(args.out))}")
    return 0
