"""skam: scikit-learn-compatible Associative Memory.

Dense Associative Memories (modern Hopfield networks) as scikit-learn
estimators, with one shared energy/descent engine running on NumPy or CuPy.
"""

from skam.cluster import AMClustering
from skam.diffusion import DiffusionAM
from skam.discrete import DiscreteDenseAM, HopfieldNetwork
from skam.energy_transformer import EnergyTransformer
from skam.hierarchical import HierarchicalAM, HierarchicalAMClassifier
from skam.memory import DenseAM
from skam.random_features import (
    BochnerFeatures,
    KernelSumClippedWarning,
    RandomFeatureAM,
    RandomFeatureAMClassifier,
)
from skam.supervised import DenseAMClassifier, DenseAMRegressor

__version__ = "0.1.0.dev0"

__all__ = [
    "AMClustering",
    "BochnerFeatures",
    "DenseAM",
    "DenseAMClassifier",
    "DenseAMRegressor",
    "DiffusionAM",
    "DiscreteDenseAM",
    "EnergyTransformer",
    "HierarchicalAM",
    "HierarchicalAMClassifier",
    "HopfieldNetwork",
    "KernelSumClippedWarning",
    "RandomFeatureAM",
    "RandomFeatureAMClassifier",
    "__version__",
]
