#!/usr/bin/env python
"""python tools/eval.py --cfg FILE --ckpt FILE  (top-1/top-5 of a trained student)."""
import sys

from lavid_plugin.cli.train import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
