"""``python -m harness.emulator`` = ``harness.emulator.cli.main``."""

import sys

from .cli import main

sys.exit(main())
