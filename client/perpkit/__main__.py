"""``python -m perpkit``: the command line, as the ``perpkit`` script."""

import sys

from perpkit.cli import main

sys.exit(main())
