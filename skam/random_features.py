"""Random Fourier features and the random-feature (distributed) associative memory.

* :class:`BochnerFeatures`: random features of shift-invariant kernels drawn
  from their spectral density (Bochner's theorem): Gaussian, Laplacian,
  Cauchy and Matern kernels; ``"sincos"``, ``"cos"`` and positive maps;
  optional orthogonal random features.
* :class:`RandomFeatureAM`: the Dense Associative Memory of Hoover et al.
  (2024, "DrDAM") whose memories are summed into one vector
  ``T = sum_mu phi(xi_mu)``; energy descent as in :class:`skam.DenseAM`
  without keeping the patterns.
* :class:`RandomFeatureAMClassifier`: one distributed memory per class, the
  class-conditional kernel sums as a classifier.

This module is the public home of these names; each lives in a module with
one role: :mod:`skam._bochner_features` (the transformer),
:mod:`skam._random_feature_memory` (the memory),
:mod:`skam._random_feature_classifier` (the classifier) and
:mod:`skam._random_feature_base` (what they share). The numerics live in
:mod:`skam._bochner`; the descent loop is the engine's
(:func:`skam._descent.descend`, with a random-feature energy oracle).
"""

from skam._bochner_features import BochnerFeatures
from skam._random_feature_base import KernelSumClippedWarning
from skam._random_feature_classifier import RandomFeatureAMClassifier
from skam._random_feature_memory import RandomFeatureAM

__all__ = [
    "BochnerFeatures",
    "KernelSumClippedWarning",
    "RandomFeatureAM",
    "RandomFeatureAMClassifier",
]
