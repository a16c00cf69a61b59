"""``python -m streamer.cli.main`` runs ``fawn``."""

import sys

from streamer.cli.main import main

sys.exit(main())
