"""`python -m distillery.cli`: the client commands without the server's."""

import sys

from distillery.cli import main

sys.exit(main())
