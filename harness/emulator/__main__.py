"""``python -m harness.emulator`` = ``harness.emulator.cli.main``.

Ctrl-C and SIGTERM (what the harness sends it) stop the server gracefully and exit 0
without a traceback, whenever they arrive.
"""

import signal
import sys

signal.signal(signal.SIGTERM, signal.default_int_handler)
try:
    from .cli import main

    code = main()
except KeyboardInterrupt:
    code = 0
sys.exit(code)
