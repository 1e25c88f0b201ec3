"""``python -m bench``: run the whole benchmark (see :mod:`bench.main` and bench/README.md)."""

import sys

from bench.main import main

sys.exit(main())
