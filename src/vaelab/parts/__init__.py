"""The parts a model is composed of: posteriors, priors, likelihoods, KLs, objectives and regularisers."""

from .kl import kl_units, register_kl
from .latent import LatentSpec
from .likelihoods import BernoulliLikelihood, GaussianLikelihood, make_likelihood
from .noise import BatchShard, Generator
from .objective import Capacity, ImageTerms, KLWeight, LossTerms, Objective, Pass, Regulariser
from .posteriors import (
    CategoricalHead,
    Categoricals,
    DiagonalGaussian,
    GaussianHead,
    Point,
    PointHead,
    PosteriorHeads,  # fmt: skip
    Product,
)
from .priors import GaussianPrior, Prior, ProductPrior, UniformCategorical, standard_prior
from .regularisers import CodeBalance, CodeInvariance, DecompositionTerm, Penalty, PriorMMD

__all__ = ["BatchShard", "BernoulliLikelihood", "Capacity", "CategoricalHead", "Categoricals", "CodeBalance",
    "CodeInvariance", "DecompositionTerm", "DiagonalGaussian", "GaussianHead", "GaussianLikelihood",
    "GaussianPrior", "Generator", "ImageTerms", "KLWeight", "LatentSpec", "LossTerms", "Objective", "Pass",
    "Penalty", "Point", "PointHead", "PosteriorHeads", "Prior", "PriorMMD", "Product", "ProductPrior",
    "Regulariser", "UniformCategorical", "kl_units", "make_likelihood", "register_kl", "standard_prior"]  # fmt: skip
