"""``python -m syspage`` is the ``syspage`` command."""
import sys

from syspage.cli import main

sys.exit(main())
