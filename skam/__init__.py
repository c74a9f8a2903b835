"""skam: scikit-learn-compatible Associative Memory.

Dense Associative Memories (modern Hopfield networks) as scikit-learn
estimators, with one shared energy/descent engine running on NumPy or CuPy.
"""

from skam.memory import DenseAM, HopfieldNetwork

__version__ = "0.1.0.dev0"

__all__ = ["DenseAM", "HopfieldNetwork", "__version__"]
