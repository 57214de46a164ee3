#!/usr/bin/env python
"""python tools/train.py --cfg FILE [--resume] [KEY VALUE ...]  (mdistiller's command line)."""
import sys

from lavid_plugin.cli.train import train_main

if __name__ == "__main__":
    sys.exit(train_main())
