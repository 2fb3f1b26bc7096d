"""``python -m gfd``: see :mod:`gfd.cli`."""
from gfd.cli import main

raise SystemExit(main())
