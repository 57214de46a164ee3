"""``python -m lavid_plugin.cli`` = the ``lavid`` command."""
import sys

from . import main

sys.exit(main())
