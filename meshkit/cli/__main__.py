"""`python -m meshkit.cli`: the `meshkit` command."""

import sys

from . import main

sys.exit(main())
