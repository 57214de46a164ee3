"""Write configs/lavid/<dataset>/<student>[_<method>].yaml: one file per cell of the paper's tables.

    python scripts/make_configs.py [--check]

The tables (datasets, students, methods and their overrides) live in ``lavid_plugin/tables.py``;
this script only writes each cell's :meth:`~lavid_plugin.tables.Cell.config` as YAML. ``--check``
fails if the files on disk differ from what it would write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lavid_plugin import tables

OUT = Path(__file__).resolve().parents[1] / "configs" / "lavid"


def to_yaml(d: dict, indent: int = 0) -> str:
    lines = []
    for k, v in d.items():
        pad = "  " * indent
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines.append(to_yaml(v, indent + 1))
        elif isinstance(v, bool):
            lines.append(f"{pad}{k}: {'True' if v else 'False'}")
        elif isinstance(v, str):
            lines.append(f'{pad}{k}: "{v}"')
        else:
            lines.append(f"{pad}{k}: {v}")
    return "\n".join(lines)


def render(cell: tables.Cell) -> str:
    header = (f"# {cell.table}: {cell.folder}, {cell.student}, {cell.method}. "
              f"Written by scripts/make_configs.py from lavid_plugin/tables.py; edit that module, not this file.\n")
    if cell.student in tables.STUDENT_NOTES:
        header += f"# {tables.STUDENT_NOTES[cell.student]}\n"
    return header + to_yaml(cell.config()) + "\n"


def all_configs() -> dict[Path, str]:
    """Relative path -> YAML text of every table cell."""
    return {Path(c.path): render(c) for c in tables.all_cells()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = p.parse_args(argv)
    configs = all_configs()
    stale = [rel for rel, text in configs.items() if not (OUT / rel).is_file() or (OUT / rel).read_text() != text]
    if args.check:
        for rel in stale:
            print(f"out of date: configs/lavid/{rel}")
        if not stale:
            print(f"{len(configs)} configs under {OUT}: all up to date")
        return 1 if stale else 0
    for rel in stale:
        (OUT / rel).parent.mkdir(parents=True, exist_ok=True)
        (OUT / rel).write_text(configs[rel])
    print(f"{len(configs)} configs under {OUT} ({len(stale)} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
