"""``python -m clipstream``: same as the ``clipstream`` console script."""

import sys

from clipstream.cli import main

sys.exit(main())
