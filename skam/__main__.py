"""``python -m skam``: the main job (see :mod:`skam._demo`)."""

import sys

from skam._demo import main

if __name__ == "__main__":
    main(sys.argv[1:] or None)
