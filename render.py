#!/usr/bin/env python3
"""Render a model manifest into docker-compose.yml: `python render.py [MANIFEST]`.

See `python render.py --help`, `python render.py plan --help` and the README.
"""

import sys

from arenastack.cli import main

if __name__ == "__main__":
    sys.exit(main())
