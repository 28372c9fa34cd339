"""``python -m facekeypoints``: the same command line as ``facekeypoints``."""
import sys

from facekeypoints.cli import main

sys.exit(main())
