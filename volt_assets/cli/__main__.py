"""`python -m volt_assets.cli`: the same as `volt-assets`."""

import sys

from volt_assets.cli.main import main

sys.exit(main())
