"""scikit-learn estimators over vaelab's models: ``VAE``, ``AE``, ``BetaVAE``, ``ConditionalVAE``, ``JointVAE``,
``PCA``, and ``estimator(name)`` for any registered model (your own included).

An estimator's parameters are its model's config keys, with the defaults of the model's config class except
those in ``ESTIMATOR_DEFAULTS``, and the keys of ``FIT_PARAMETERS`` (input, training); both live here alone.
They look alike from outside: ``fit(X)`` trains (in memory, with vaelab's Trainer), ``transform`` gives the
posterior means (the codes), ``inverse_transform`` decodes codes to images, ``sample(n)`` draws images from
the prior, and ``score(X)`` is the mean ELBO per image in nats (higher is better). docs/api.md walks through them.

Input: arrays (n, h*w), (n, h, w) or (n, c, h, w) of uint8 pixels (0-255) or floats in [0, 1]; other ranges
with ``value_range``. Every image is stored as 8-bit pixels, as everywhere in vaelab (floats are rounded to
the nearest of 256 grey levels). Flat arrays take their shape from ``image_shape``, else a square single-channel
image when the feature count is a perfect square, else (1, 1, n_features), which only the MLP nets can take.

Pickling the estimators (``pickle``, ``joblib``) is the user's own choice; the pickled state holds the weights
as safetensors bytes and the config, not torch objects. vaelab itself never unpickles.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .checkpoint import weights_bytes
from .config import Config, config_from_dict
from .data import ImageData
from .data.dataset import bernoulli_pixels
from .errors import ConfigError
from .evaluate.fid import prior_samples
from .evaluate.likelihood import elbo_per_image, evaluation_batches
from .loop import Loop, log_nothing, log_to_stderr
from .models import Model, build_model, model_entry
from .models.config import ModelConfig

__all__ = ["AE", "PCA", "VAE", "BetaVAE", "ConditionalVAE", "JointVAE", "estimator"]

BATCH = 1024  # images per forward pass in transform, inverse_transform, sample and score
ESTIMATOR_DEFAULTS = {"latent_dim": 16, "hidden": (256, 256)}  # smaller than the CLI's: estimators fit arrays
FIT_PARAMETERS = {  # the estimators' own parameters and their defaults
    "binarize": "none",
    "value_range": None,
    "image_shape": None,
    "epochs": 30,
    "batch_size": 128,
    "lr": 1e-3,
    "early_stopping": False,
    "validation_fraction": 0.1,
    "n_iter_no_change": 10,
    "random_state": None,
    "verbose": False,
}
TRAINING_ONLY = ("epochs", "batch_size", "lr", "early_stopping", "validation_fraction", "n_iter_no_change", "verbose")
NOT_PARAMETERS = ("name", "conditional")  # model keys an estimator sets itself


def _immutable(value: Any) -> Any:
    """A config default as an estimator default: lists as tuples (scikit-learn's defaults must not be mutable)."""
    return tuple(value) if isinstance(value, list) else value


def _parameters(model: str, keys: tuple[str, ...] | None) -> dict[str, Any]:
    """An estimator's parameters and defaults: ``model``'s config keys (or just ``keys``), then FIT_PARAMETERS
    (without the training ones for a closed-form model)."""
    config, shared = model_entry(model).config_cls(), ModelConfig()
    names = keys or [f.name for f in dataclasses.fields(config) if f.name not in NOT_PARAMETERS]
    defaults = {name: _immutable(getattr(config, name)) for name in names}
    for name, value in ESTIMATOR_DEFAULTS.items():  # where the model keeps the shared default, not its own
        if name in defaults and getattr(config, name) == getattr(shared, name):
            defaults[name] = value
    fit = {k: v for k, v in FIT_PARAMETERS.items() if keys is None or k not in TRAINING_ONLY}
    return {"latent_dim": defaults.pop("latent_dim"), **defaults, **fit}


def _init_with(parameters: dict[str, Any]):
    """An ``__init__`` taking exactly ``parameters`` (latent_dim also positionally) and storing each, unchanged,
    under its own name (scikit-learn's convention), with the signature scikit-learn reads."""

    def __init__(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__} takes latent_dim positionally and the rest by keyword")
        kwargs = dict(zip(["latent_dim"], args, strict=False)) | kwargs
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown:
            raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {unknown[0]!r}")
        for name, default in parameters.items():
            setattr(self, name, kwargs.get(name, default))

    kind = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter("latent_dim", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=parameters["latent_dim"])]
        + [inspect.Parameter(name, kind, default=d) for name, d in parameters.items() if name != "latent_dim"]
    )
    return __init__


class _Estimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What every estimator shares. A subclass names its model (``_model``) and, for a model fitted in closed
    form, the keys that matter (``_keys``); its ``__init__`` and parameters follow from them."""

    _model: ClassVar[str] = "vae"
    _keys: ClassVar[tuple[str, ...] | None] = None
    _conditional: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            cls.__init__ = _init_with(_parameters(cls._model, cls._keys))

    # -- fitting -------------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on images X (and labels y for ConditionalVAE; ignored otherwise); returns self."""
        x, labels = self._validate_fit(X, y)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        config = self._config(seed)
        data = self._image_data(x, labels, config)
        with torch.random.fork_rng(devices=[]):  # the weights' initialisation draws from torch's global RNG
            torch.manual_seed(seed)
            try:
                model = build_model(config.model, data.image_shape, data.num_classes)
            except ConfigError as err:
                raise ValueError(f"{type(self).__name__}: {err}") from None
            loop = Loop(config, data, model, log=log_to_stderr if getattr(self, "verbose", False) else log_nothing)
            loop.fit()
        self.config_ = config
        self.model_ = model.eval()
        self.history_ = loop.history
        self.n_epochs_ = loop.epoch
        return self

    def _validate_fit(self, X, y) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._images(X, reset=True), None

    def _config(self, seed: int) -> Config:
        """The vaelab Config these parameters describe (a ValueError names a bad one)."""
        keys = [k for k in _parameters(self._model, self._keys) if k not in FIT_PARAMETERS]
        model = {"name": self._model, **{key: _plain(getattr(self, key)) for key in keys}}
        if self._conditional:
            model["conditional"] = True
        train = {"progress": "never", "keep": 1, "device": "cpu"}  # the estimators' arrays live on the CPU
        train |= {key: _plain(getattr(self, key)) for key in ("epochs", "batch_size", "lr") if hasattr(self, key)}
        data = {"name": "array", "binarize": self.binarize, "val_fraction": 0.0}
        if getattr(self, "early_stopping", False):
            train["early_stopping"] = _plain(self.n_iter_no_change)
            data["val_fraction"] = _plain(self.validation_fraction)
        try:
            return config_from_dict({"seed": seed, "model": model, "train": train, "data": data})
        except ConfigError as err:
            raise ValueError(f"{type(self).__name__}: {err}") from None

    def _image_data(self, x: torch.Tensor, labels: torch.Tensor | None, config: Config) -> ImageData:
        """The training images as an ImageData: a seeded validation split (with early stopping), no test split."""
        generator = torch.Generator().manual_seed(config.seed)
        if config.data.binarize == "static":  # one fixed draw, stored as 0 / 255 like load_dataset's
            x = bernoulli_pixels(x, generator).to(torch.uint8).mul_(255)
        fraction, n = config.data.val_fraction, len(x)
        n_val = 0 if fraction == 0 else max(1, round(fraction * n))
        if n - n_val < 1:
            raise ValueError(f"validation_fraction={fraction} leaves no training image of n_samples={n}")
        order = torch.randperm(n, generator=generator)
        val, train = order[:n_val], order[n_val:]

        def part(idx: torch.Tensor) -> torch.Tensor | None:
            return None if labels is None else labels[idx]

        names = [str(c) for c in self.classes_] if self._conditional else None
        return ImageData(
            "array", x[train], part(train), x[val], part(val), x[:0], part(order[:0]), names, config.data.binarize,
            f"{n} images from an array",
        )  # fmt: skip

    # -- input ---------------------------------------------------------------------------------------------
    def _images(self, X, reset: bool) -> torch.Tensor:
        """Validated uint8 images (n, C, H, W) of X; on ``reset`` (fit) also sets n_features_in_, image_shape_
        and the value range."""
        if not hasattr(X, "ndim"):
            X = np.asarray(X)
        trailing = None
        if X.ndim in (3, 4):
            trailing = tuple(X.shape[1:])
            X = np.asarray(X).reshape(len(X), -1)
        X = validate_data(self, X, reset=reset, dtype="numeric")
        shape = None if trailing is None else ((1, *trailing) if len(trailing) == 2 else trailing)
        if reset:
            self.image_shape_ = self._resolve_shape(shape, X.shape[1])
            self._input_shape = trailing or (X.shape[1],)  # the layout of inverse_transform's and sample's output
            self._input_dtype = X.dtype
        elif shape is not None and shape != self.image_shape_:
            raise ValueError(f"{type(self).__name__} was fitted on images of shape {self.image_shape_}; got {shape}")
        pixels = self._to_uint8(X, reset)
        return torch.from_numpy(pixels).reshape(len(pixels), *self.image_shape_)

    def _resolve_shape(self, shape: tuple[int, ...] | None, n_features: int) -> tuple[int, int, int]:
        given = self.image_shape
        if given is not None:
            given = tuple(int(v) for v in given)
            given = (1, *given) if len(given) == 2 else given
            if len(given) != 3 or math.prod(given) != n_features:
                raise ValueError(f"image_shape={self.image_shape} does not hold the {n_features} features of X")
            if shape is not None and shape != given:
                raise ValueError(f"image_shape={self.image_shape} disagrees with X's images of shape {shape}")
            return given
        if shape is not None:
            return shape
        side = math.isqrt(n_features)
        if side * side == n_features:
            return (1, side, side)
        if getattr(self, "net", "mlp") == "conv":
            raise ValueError(
                f"net='conv' needs images: {n_features} features are no square image; give image_shape=(c, h, w) "
                "or X of shape (n, c, h, w)"
            )
        return (1, 1, n_features)

    def _to_uint8(self, X: np.ndarray, reset: bool) -> np.ndarray:
        """Pixels 0-255 of X: uint8/int as they are, floats in [0, 1] times 255, or ``value_range`` mapped."""
        name = type(self).__name__
        if self.value_range is None:
            if X.dtype.kind == "b":
                return X.astype(np.uint8) * 255
            low, high = (X.min(), X.max()) if X.size else (0, 0)
            if X.dtype.kind in "iu":
                if low < 0 or high > 255:
                    raise ValueError(
                        f"{name} reads integers as pixels 0-255; X holds {low}..{high}. Set value_range=(low, high)"
                    )
                return X.astype(np.uint8)
            if low < 0 or high > 1:
                raise ValueError(
                    f"{name} reads floats as pixels in [0, 1]; X holds {low:g}..{high:g}. Scale X, or set "
                    f"value_range=({low:g}, {high:g}) (or value_range='fit' to use the training minimum and maximum)"
                )
            return np.rint(X * 255).astype(np.uint8)
        if reset:
            self.value_range_ = self._fit_value_range(X)
        low, high = self.value_range_
        scaled = np.clip((X.astype(np.float64) - low) / (high - low), 0.0, 1.0)
        return np.rint(scaled * 255).astype(np.uint8)

    def _fit_value_range(self, X: np.ndarray) -> tuple[float, float]:
        if isinstance(self.value_range, str) and self.value_range == "fit":
            low, high = float(X.min()), float(X.max())
            return (low, high) if high > low else (low, low + 1.0)
        try:
            low, high = (float(v) for v in self.value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be None, 'fit' or (low, high); got {self.value_range!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"value_range=(low, high) needs finite low < high; got {self.value_range!r}")
        return low, high

    def _from_unit(self, images: torch.Tensor, dtype) -> np.ndarray:
        """Images in [0, 1] back to the layout and value range of the training input."""
        out = images.reshape(len(images), *self._input_shape).double().numpy()
        if getattr(self, "value_range_", None) is not None:
            low, high = self.value_range_
            out = low + out * (high - low)
        return out.astype(dtype, copy=False)

    def _out_dtype(self, dtype) -> np.dtype:
        return np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.dtype(np.float32)

    def _labels(self, y, n: int) -> torch.Tensor | None:
        return None

    # -- the learned map -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _encode(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([self.model_.encode(xb, yb).mean for xb, yb in evaluation_batches(x, labels, "none", BATCH)])

    def transform(self, X):
        """Posterior means (n, code size) of images X: the latent codes (for JointVAE [mu, one-hot argmax])."""
        check_is_fitted(self)
        dtype = self._out_dtype(_dtype_of(X))
        x = self._images(X, reset=False)
        return self._encode(x, None).numpy().astype(dtype)

    def inverse_transform(self, X, y=None):
        """Mean images of the codes X (n, code size), in the layout and value range of the training input
        (floats in [0, 1] without value_range)."""
        check_is_fitted(self)
        z = check_array(X, dtype=[np.float64, np.float32])
        if z.shape[1] != self.model_.spec.code_size:
            raise ValueError(f"X has {z.shape[1]} features, but {type(self).__name__} decodes codes of "
                             f"{self.model_.spec.code_size}")  # fmt: skip
        labels = self._labels(y, len(z))
        if self._conditional and labels is None:
            raise ValueError("ConditionalVAE.inverse_transform needs the labels y of the codes")
        return self._from_unit(self._decode(torch.as_tensor(z, dtype=torch.float32), labels), z.dtype)

    @torch.no_grad()
    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        parts = [
            self.model_.decode_mean(z[i : i + BATCH], None if labels is None else labels[i : i + BATCH])
            for i in range(0, len(z), BATCH)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, *self.image_shape_)

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """``n_samples`` images drawn from the prior (for AE and PCA: a Gaussian fitted to the training codes),
        in the training input's layout and value range. Draws follow ``random_state`` (the estimator's when None)."""
        check_is_fitted(self)
        return self._sample(n_samples, None, random_state)

    def _sample(self, n_samples: int, labels: torch.Tensor | None, random_state) -> np.ndarray:
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        images = prior_samples(self.model_, int(n_samples), labels, int(rng.randint(np.iinfo(np.int32).max)))
        return self._from_unit(images, self._out_dtype(self._input_dtype))

    def score(self, X, y=None) -> float:
        """Mean ELBO per image of X in nats (higher is better): -(recon + KL) with one posterior sample per image
        and fixed noise (for AE and PCA, whose KL is 0: minus the reconstruction NLL)."""
        check_is_fitted(self)
        x = self._images(X, reset=False)
        return float(-elbo_per_image(self.model_, x, None, self.config_.data.binarize)["neg_elbo"].mean())

    # -- scikit-learn plumbing ---------------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        return self.model_.spec.code_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = self._conditional
        return tags

    def __getstate__(self) -> dict[str, Any]:
        """The estimator's attributes with the model as safetensors bytes (rebuilt from config_ on unpickling)."""
        state = dict(super().__getstate__())
        if isinstance(state.get("model_"), Model):
            state["model_"] = weights_bytes(state["model_"], {})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if isinstance(state.get("model_"), bytes):
            classes = state.get("classes_")
            model = build_model(
                state["config_"].model, state["image_shape_"], None if classes is None else len(classes)
            )
            model.load_state_dict(load_safetensors_bytes(state["model_"]))
            state["model_"] = model.eval()
        super().__setstate__(state)


class VAE(_Estimator):
    """Variational autoencoder (Kingma & Welling 2014): Gaussian posterior, N(0, I) prior.

    Parameters
    ----------
    latent_dim : int
        Latent dimensions (this and the keys down to ``free_bits`` are the model's, docs/models.md).
    net : {"mlp", "conv"}
        "conv" needs image-shaped input or ``image_shape``.
    hidden : tuple of int
        MLP widths, encoder order (conv nets: their dense layer).
    channels : tuple of int
        Conv channels.
    likelihood : {"bernoulli", "gaussian"}
        "gaussian" has the fixed std ``gaussian_std``.
    gaussian_std : float
        The Gaussian likelihood's std.
    kl_warmup_steps : int
        The KL weight rises linearly 0 -> 1 over these steps; 0 is off.
    kl_warmup_fraction : float
        The same over this fraction (0 to 1) of the training steps, whatever their number; set one of the two.
    free_bits : float
        Per-dimension KL floor in nats; 0 is off.
    binarize : {"none", "dynamic", "static"}
        "dynamic" is a fresh Bernoulli draw of every batch (the CLI's default), "static" one draw.
    value_range : None, (low, high) or "fit"
        None: uint8 pixels or floats in [0, 1]; (low, high) is mapped to [0, 1] and clipped; "fit" takes the
        training minimum and maximum.
    image_shape : (c, h, w), (h, w) or None
        The shape of flat rows; None infers it (see the module docstring).
    epochs : int
        Training length.
    batch_size : int
        Images per Adam step.
    lr : float
        Adam's learning rate.
    early_stopping : bool
        Hold out ``validation_fraction`` of X and stop after ``n_iter_no_change`` epochs without a better
        validation -ELBO.
    validation_fraction : float
        The share of X held out with ``early_stopping``.
    n_iter_no_change : int
        Epochs without a better validation -ELBO before ``early_stopping`` stops.
    random_state : None, int or RandomState
        Seeds the weights, data order, noise, and ``sample``.
    verbose : bool
        Print one line per epoch to stderr.

    Attributes
    ----------
    model_
        The trained vaelab model (torch).
    config_
        Its vaelab Config.
    image_shape_
        (C, H, W).
    n_features_in_
        The number of features (pixels per image) of X.
    history_
        One dict of loss terms per epoch (nats per image).
    n_epochs_
        Epochs trained.
    value_range_
        (low, high), when ``value_range`` is set.
    """

    _model = "vae"


class BetaVAE(_Estimator):
    """beta-VAE (Higgins et al. 2017): the VAE trained on recon + beta * KL; ``score`` is still the ELBO.

    Parameters: those of ``VAE`` and ``beta`` (float >= 0, the weight of the per-image KL)."""

    _model = "beta-vae"


class AE(_Estimator):
    """Deterministic autoencoder; ``sample`` draws from a Gaussian fitted to the training codes and ``score`` is
    minus the reconstruction NLL (its KL is 0). Parameters: those of ``VAE`` without the KL options."""

    _model = "ae"


class JointVAE(_Estimator):
    """JointVAE (Dupont 2018): ``latent_dim`` continuous dimensions plus one categorical latent per entry of
    ``discrete``, each part held to its own capacity schedule. ``transform`` gives [mu, one-hot argmax of each
    categorical], (n, latent_dim + sum(discrete)); ``categories(X)`` gives the argmax indices.

    Parameters: those of ``VAE`` (without the KL options) and the JointVAE keys of docs/models.md: ``discrete``,
    ``tau``, ``tau_start``, ``tau_steps``, ``gamma``, ``cont_c_max``, ``cont_c_steps``, ``disc_c_max``,
    ``disc_c_steps`` (capacities in nats, their ramps in optimisation steps: small data sets take few steps per
    epoch, so shorten the ramps), and the code terms ``invariance``, ``invariance_shift``,
    ``invariance_rotation``, ``balance`` (0: off)."""

    _model = "joint-vae"

    def categories(self, X) -> np.ndarray:
        """The most probable category of each discrete latent, (n, len(discrete)) int64."""
        check_is_fitted(self)
        return self.model_.spec.codes(self._encode(self._images(X, reset=False), None)).numpy()


class ConditionalVAE(VAE):
    """Conditional VAE: encoder and decoder see the one-hot label, q(z|x, y) and p(x|z, y). ``fit(X, y)`` needs
    labels (any values; ``classes_`` keeps them). Elsewhere labels are optional:

    - ``transform(X, y)`` encodes under the given labels; ``transform(X)`` (what a Pipeline calls, also inside
      ``fit_transform``) under the label the model itself finds most likely, ``infer_labels(X)``: the class with
      the lowest recon(x | posterior mean) + KL. So a Pipeline's next step sees codes made the same way in
      training and in prediction.
    - ``score(X, y)`` is the mean ELBO of log p(x|y); ``score(X)`` the mean of logsumexp_y ELBO(x, y) - log K,
      a bound on log p(x) under a uniform class prior.
    - ``sample(n, y)`` draws images of the labels y (one label, or n of them); without y it cycles through
      ``classes_``.
    - ``inverse_transform(Z, y)`` needs the labels.

    Parameters: those of ``VAE``."""

    _conditional = True

    def _validate_fit(self, X, y) -> tuple[torch.Tensor, torch.Tensor]:
        if y is None:
            raise ValueError(
                "ConditionalVAE requires y to be passed, but the target y is None: fit(X, y) with one label per image"
            )
        x = self._images(X, reset=True)
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None), warn=True)
        if len(y) != len(x):
            raise ValueError(f"X has {len(x)} images but y has {len(y)} labels")
        check_classification_targets(y)
        self.classes_, indices = np.unique(y, return_inverse=True)
        return x, torch.as_tensor(indices, dtype=torch.int64)

    def _labels(self, y, n: int) -> torch.Tensor | None:
        """Indices into classes_ of the labels y (one label broadcast to n), or None."""
        if y is None:
            return None
        y = np.asarray(y)
        y = np.full(n, y) if y.ndim == 0 else column_or_1d(y)
        if len(y) != n:
            raise ValueError(f"expected {n} labels; got {len(y)}")
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        unknown = [label for label in y.tolist() if label not in index]
        if unknown:
            raise ValueError(f"y holds labels not seen in fit, e.g. {unknown[0]!r}; known: {self.classes_.tolist()}")
        return torch.tensor([index[label] for label in y.tolist()], dtype=torch.int64)

    def transform(self, X, y=None):
        """Posterior means (n, latent_dim) under the labels y, or under ``infer_labels(X)`` when y is None."""
        check_is_fitted(self)
        dtype = self._out_dtype(_dtype_of(X))
        x = self._images(X, reset=False)
        labels = self._labels(y, len(x))
        return self._encode(x, self._infer(x) if labels is None else labels).numpy().astype(dtype)

    def infer_labels(self, X) -> np.ndarray:
        """For each image, the class with the lowest recon(x | posterior mean) + KL (deterministic), from classes_."""
        check_is_fitted(self)
        return self.classes_[self._infer(self._images(X, reset=False)).numpy()]

    @torch.no_grad()
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        model, k = self.model_, len(self.classes_)
        best = []
        for xb, _ in evaluation_batches(x, None, "none", BATCH):
            costs = []
            for label in range(k):
                y = torch.full((len(xb),), label)
                posterior = model.encode(xb, y)
                kl = model.closed_form_kls(posterior)[0].sum(-1)
                costs.append(model.likelihood.nll(model.decode(posterior.mean, y), xb) + kl)
            best.append(torch.stack(costs).argmin(0))
        return torch.cat(best)

    def score(self, X, y=None) -> float:
        """Mean ELBO of log p(x|y) per image in nats; without y, mean of logsumexp_y ELBO(x, y) - log K."""
        check_is_fitted(self)
        x = self._images(X, reset=False)
        labels, binarize = self._labels(y, len(x)), self.config_.data.binarize
        if labels is not None:
            return float(-elbo_per_image(self.model_, x, labels, binarize)["neg_elbo"].mean())
        k = len(self.classes_)
        elbos = torch.stack([
            -elbo_per_image(self.model_, x, torch.full((len(x),), label), binarize)["neg_elbo"] for label in range(k)
        ])  # fmt: skip
        return float((torch.logsumexp(elbos, 0) - math.log(k)).mean())

    def sample(self, n_samples: int = 1, y=None, random_state=None) -> np.ndarray:
        """``n_samples`` images of the labels y (one label or n_samples of them; None cycles through classes_)."""
        check_is_fitted(self)
        cycle = torch.arange(int(n_samples)) % len(self.classes_)
        return self._sample(n_samples, cycle if y is None else self._labels(y, int(n_samples)), random_state)


class PCA(_Estimator):
    """Principal component analysis, fitted in closed form, with the autoencoders' extras: ``sample`` draws from
    N(0, diag(explained_variance_)) over the codes, ``score`` is minus the reconstruction NLL under
    ``likelihood`` and ``inverse_transform`` clamps images to [0.001, 0.999].

    Parameters: ``latent_dim`` (the components), ``likelihood``, ``gaussian_std``, ``binarize``,
    ``value_range``, ``image_shape``, ``random_state`` (for ``sample``), as for ``VAE``.
    Attributes (scikit-learn's names): ``components_`` (latent_dim, n_features), ``mean_``,
    ``explained_variance_``, and ``model_`` etc. as for ``VAE``."""

    _model = "pca"
    _keys = ("latent_dim", "likelihood", "gaussian_std")

    def _validate_fit(self, X, y) -> tuple[torch.Tensor, None]:
        x, _ = super()._validate_fit(X, y)
        n, p = len(x), math.prod(self.image_shape_)
        if isinstance(self.latent_dim, (int, np.integer)) and self.latent_dim > min(n, p):
            raise ValueError(
                f"PCA latent_dim={self.latent_dim} must be at most min(n_samples, n_features); "
                f"got n_samples={n}, n_features={p}"
            )
        return x, None

    def fit(self, X, y=None):
        """Fit the mean and the top ``latent_dim`` principal directions of X; returns self."""
        super().fit(X, y)
        projection = self.model_.encoder.features
        self.components_ = projection.components.T.numpy().copy()  # (D, P)
        self.mean_ = projection.mean.numpy().copy()
        self.explained_variance_ = self.model_.prior["z"].var.numpy().copy()
        return self


def estimator(model: str) -> type[_Estimator]:
    """The estimator class of any registered model, e.g. ``estimator("iwae")(latent_dim=8, k=10).fit(X)``: its
    parameters are the model's config keys and the fit parameters (see ``VAE``)."""
    model_entry(model)  # a clear error for an unknown name
    name = "".join(part.capitalize() for part in model.replace("_", "-").split("-"))
    return type(name, (_Estimator,), {"_model": model, "__module__": __name__, "__doc__": estimator.__doc__})


def _plain(value: Any) -> Any:
    """A parameter as the config wants it: tuples as lists, NumPy scalars (e.g. from a param grid) as Python's."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dtype_of(X) -> np.dtype:
    dtype = getattr(X, "dtype", None)
    return np.dtype(dtype) if isinstance(dtype, np.dtype) else np.dtype(np.float64)
