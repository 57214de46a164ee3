"""``python -m mdistiller_patches enable | disable | status``."""

import argparse
import sys
import sysconfig
from pathlib import Path

from . import PTH_NAME, apply, mdistiller_variant

# one line, as .pth files need; does nothing if the plugin was uninstalled since
PTH_LINE = ("import importlib.util as _u; _u.find_spec('mdistiller_patches') is not None and "
            "__import__('mdistiller_patches._autoload')\n")


def pth_path() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mdistiller_patches", description=__doc__)
    p.add_argument("action", choices=("enable", "disable", "status"))
    a = p.parse_args(argv)
    path = pth_path()
    if a.action == "enable":
        if mdistiller_variant() is None:
            print("mdistiller is not installed in this environment; install it first", file=sys.stderr)
            return 1
        path.write_text(PTH_LINE)
        print(f"enabled: {path}\nmdistiller's tools/train.py now runs the plugin's configs in this environment")
    elif a.action == "disable":
        path.unlink(missing_ok=True)
        print(f"disabled: removed {path}")
    else:
        print(f"mdistiller: {mdistiller_variant() or 'not installed'}; hook {path}: "
              f"{'present' if path.is_file() else 'absent'}")
        if mdistiller_variant():
            report = apply()
            print(f"bridge adds distillers {report['distillers']}, models {report['models']}, "
                  f"patches {report['datasets']}, trainers {report['trainers'] or 'none needed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
