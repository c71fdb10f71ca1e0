"""`python -m gsid.cli`."""

import sys

from gsid.cli import main

sys.exit(main())
