"""``python -m argonne_kit …`` (also what ``torchrun -m argonne_kit run RECIPE`` executes)."""

import os
import sys

from argonne_kit.cli import main

code = main()
if "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A torchrun worker: the strategy already ran barrier → destroy; gloo's threads can still
    # abort during interpreter finalisation, turning a finished run into a
    # failed job now and then. Flush and leave without finalisation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
