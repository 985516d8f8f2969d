"""``python -m argonne_kit …`` (also what ``torchrun -m argonne_kit run RECIPE`` executes)."""

import sys

from argonne_kit.cli import main

sys.exit(main())
