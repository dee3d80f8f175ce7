"""``python -m genlab`` (and ``torchrun -m genlab``) run the command line."""

import sys

from .cli import main

sys.exit(main())
