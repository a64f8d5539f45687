"""`python -m claude_otel.demo ...`: the same as `claude-otel demo ...`."""

import sys

from . import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C before the demo's own handler is installed (the demo handles later ones)
    sys.exit(130)
