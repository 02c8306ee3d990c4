"""``python -m gbpfd ...``: the ``gbpfd`` command where it is not installed
(a GPU machine running from a copied tree)."""
import sys

from gbpfd.cli import main

sys.exit(main())
