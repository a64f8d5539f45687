"""`python -m claude_otel.drill ...`: the same as `claude-otel drill ...`."""

import sys

from . import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C before the drill's own handler is installed (the stack is stopped anyway)
    sys.exit(130)
