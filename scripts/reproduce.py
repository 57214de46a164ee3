"""Launch (or print) every run of one of the paper's tables: see lavid_plugin/reproduce.py.

    python scripts/reproduce.py --table 1 --seeds 3 [--datasets cub] [--students res18] [--methods lavid] [--dry-run]
"""
import sys

from lavid_plugin.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
