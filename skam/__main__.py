"""``python -m skam``: the main job (see :mod:`skam._demo`; ``--help`` lists it)."""

import sys

from skam._demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
