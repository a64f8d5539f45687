"""`python -m claude_otel ...`: the same as the `claude-otel` command."""

import sys

from .cli import main

sys.exit(main())
