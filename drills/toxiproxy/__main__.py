"""``python -m drills.toxiproxy``: run the Toxiproxy-compatible server (see ``daemon``)."""

from __future__ import annotations

import sys

from drills.toxiproxy.daemon import main

if __name__ == "__main__":
    sys.exit(main())
