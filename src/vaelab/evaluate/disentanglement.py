"""Disentanglement metrics: how well single latent dimensions follow single ground-truth factors.

Each metric takes a ``GroundTruth`` (factors sampled uniformly, the observation of any factor vector) and a
representation function (observations (n, ...) -> codes (n, D)), samples what its paper's protocol says and
returns a dict of scores. Protocol sizes default to disentanglement_lib's (Locatello et al. 2019); docs/metrics.md
states them. Sampling is batched: one call of ``represent`` sees up to ``CHUNK`` observations.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Protocol

import numpy as np

CHUNK = 8192  # observations per call of the representation function
MIG_BINS = 20
FACTOR_VAE_PRUNE_STD = 0.05  # disentanglement_lib's prune_dims.threshold: dims whose std is below are collapsed

Represent = Callable[[np.ndarray], np.ndarray]


class GroundTruth(Protocol):
    """A dataset generated from independent discrete factors (``data.shapes.FactorData`` is one)."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    categorical: tuple[bool, ...]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def observations(self, factors: np.ndarray) -> np.ndarray: ...


def represent_factors(data: GroundTruth, represent: Represent, factors: np.ndarray) -> np.ndarray:
    """Codes (n, D), float64, of the observations of factor indices (n, K), ``CHUNK`` at a time."""
    parts = [represent(data.observations(factors[i : i + CHUNK])) for i in range(0, len(factors), CHUNK)]
    return np.concatenate(parts).astype(np.float64)


def sample_codes(data: GroundTruth, represent: Represent, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(factors (n, K), codes (n, D)) of n observations with uniformly drawn factors."""
    factors = data.sample_factors(n, rng)
    return factors, represent_factors(data, represent, factors)


# --- information-theoretic pieces (MIG) ---


def histogram_discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """Each column of codes (n, D) cut into ``bins`` equal-width bins between its min and max, (n, D) int64 in
    0..bins-1: ``np.digitize(c, np.histogram(c, bins)[1][:-1]) - 1`` per column, for all columns at once."""
    lo, hi = codes.min(0), codes.max(0)
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.floor((codes - lo) / width * bins), 0, bins - 1).astype(np.int64)


def discrete_entropy(values: np.ndarray) -> np.ndarray:
    """Plug-in entropy in nats of each column of integer values (n, K): H = -sum_v p(v) log p(v)."""
    from scipy.stats import entropy

    return np.array([entropy(np.bincount(column - column.min())) for column in values.T])


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plug-in mutual information in nats between each column of integers a (n, D) and of b (n, K), (D, K):
    I(a; b) = sum_{u,v} p(u, v) log(p(u, v) / (p(u) p(v))), from the joint counts."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(u, v) for v in b.T] for u in a.T])


def mig_from_codes(factors: np.ndarray, codes: np.ndarray, bins: int = MIG_BINS) -> dict:
    """MIG of sampled (factors, codes): mean over factors k of (I(z_top1; v_k) - I(z_top2; v_k)) / H(v_k), with
    each code dimension discretised into ``bins`` histogram bins; also the per-factor gaps and the MI matrix."""
    mi = mutual_information(histogram_discretize(codes, bins), factors)  # (D, K)
    entropy = discrete_entropy(factors)  # (K,)
    top = np.sort(mi, axis=0)[::-1]  # (D, K), largest first
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])
    gaps = (top[0] - second) / entropy
    return {"score": float(gaps.mean()), "per_factor": gaps.tolist(), "mutual_information": mi.tolist()}


def mig(data: GroundTruth, represent: Represent, rng, n_points: int = 10_000, bins: int = MIG_BINS) -> dict:
    """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. 6),
    disentanglement_lib's estimator: n_points uniform samples, codes discretised into 20 histogram bins,
    MIG = 1/K sum_k (I(z_j(k); v_k) - max_{j != j(k)} I(z_j; v_k)) / H(v_k), j(k) = argmax_j I(z_j; v_k)."""
    factors, codes = sample_codes(data, represent, n_points, rng)
    return {**mig_from_codes(factors, codes, bins), "n_points": n_points, "bins": bins}


# --- classifier-based scores ---


def beta_vae_score(
    data: GroundTruth, represent: Represent, rng, n_train: int = 10_000, n_eval: int = 5_000, batch_size: int = 64
) -> dict:
    """beta-VAE metric (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts...", section 3): a point
    fixes a random factor k in ``batch_size`` pairs of otherwise independent samples; its feature is
    mean_pairs |z1 - z2| (D,), its label k. Score: accuracy of a logistic regression (scikit-learn defaults, as
    disentanglement_lib) trained on n_train points, on n_eval new points. Chance is 1 / K."""
    x_train, y_train = _pair_features(data, represent, rng, n_train, batch_size)
    x_eval, y_eval = _pair_features(data, represent, rng, n_eval, batch_size)
    from sklearn.linear_model import LogisticRegression

    model = quiet_fit(LogisticRegression(random_state=0), x_train, y_train)
    return {
        "score": float((model.predict(x_eval) == y_eval).mean()),
        "train_accuracy": float((model.predict(x_train) == y_train).mean()),
        "n_train": n_train,
        "n_eval": n_eval,
        "batch_size": batch_size,
    }


def _pair_features(data: GroundTruth, represent: Represent, rng, n: int, batch: int) -> tuple[np.ndarray, ...]:
    """(features (n, D), labels (n,)) of the beta-VAE metric."""
    k = len(data.factor_sizes)
    labels = rng.integers(0, k, n)
    first = data.sample_factors(n * batch, rng).reshape(n, batch, k)
    second = data.sample_factors(n * batch, rng).reshape(n, batch, k)
    second = np.where(labels[:, None, None] == np.arange(k), first, second)  # the chosen factor shared by a pair
    z1 = represent_factors(data, represent, first.reshape(-1, k))
    z2 = represent_factors(data, represent, second.reshape(-1, k))
    return np.abs(z1 - z2).reshape(n, batch, -1).mean(1), labels


def factor_vae_score(
    data: GroundTruth,
    represent: Represent,
    rng,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    batch_size: int = 64,
    n_variance: int = 10_000,
    prune_std: float = FACTOR_VAE_PRUNE_STD,
) -> dict:
    """FactorVAE metric (Kim & Mnih 2018, "Disentangling by Factorising", section 4): each vote fixes a random
    factor k over ``batch_size`` samples, divides each code dimension's variance in that batch by its variance
    over the data (n_variance samples; dims with std < prune_std are collapsed and pruned) and votes (k, argmin
    dim). A majority-vote classifier (each dim -> its most voted factor) fitted on n_train votes is scored on
    n_eval new votes. Chance is about 1 / K."""
    _, codes = sample_codes(data, represent, n_variance, rng)
    global_var = codes.var(0, ddof=1)
    active = np.flatnonzero(np.sqrt(global_var) >= prune_std)
    out = {"n_train": n_train, "n_eval": n_eval, "batch_size": batch_size, "active_dims": int(len(active))}
    if len(active) == 0:
        return {**out, "score": 0.0, "train_accuracy": 0.0}
    train_votes = _votes(data, represent, rng, n_train, batch_size, global_var, active)  # (K, D)
    classifier = train_votes.argmax(0)  # (D,)
    eval_votes = _votes(data, represent, rng, n_eval, batch_size, global_var, active)
    dims = np.arange(train_votes.shape[1])
    return {
        **out,
        "score": float(eval_votes[classifier, dims].sum() / eval_votes.sum()),
        "train_accuracy": float(train_votes[classifier, dims].sum() / train_votes.sum()),
    }


def _votes(data, represent, rng, n: int, batch: int, global_var: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(K, D) counts of FactorVAE votes (fixed factor, code dim of least normalised variance)."""
    k = len(data.factor_sizes)
    fixed = rng.integers(0, k, n)
    factors = data.sample_factors(n * batch, rng).reshape(n, batch, k)
    factors = np.where(fixed[:, None, None] == np.arange(k), factors[:, :1], factors)  # the first sample's value
    codes = represent_factors(data, represent, factors.reshape(-1, k)).reshape(n, batch, -1)
    ratio = codes[:, :, active].var(1, ddof=1) / global_var[active]  # (n, active)
    votes = np.zeros((k, len(global_var)), dtype=np.int64)
    np.add.at(votes, (fixed, active[ratio.argmin(1)]), 1)
    return votes


def sap(data: GroundTruth, represent: Represent, rng, n_train: int = 10_000, n_test: int = 5_000) -> dict:
    """SAP score (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled
    Observations", section 3): a score S[j, k] per code dim j and factor k, from dim j alone: for an ordered
    factor the R^2 of a linear regression, Cov(z_j, v_k)^2 / (Var z_j Var v_k), on n_train samples; for a
    categorical one the n_test accuracy of a linear SVM (C=0.01, balanced classes) trained on n_train. SAP =
    mean over factors of the gap between the two largest S[., k]."""
    from sklearn.svm import LinearSVC

    factors, codes = sample_codes(data, represent, n_train, rng)
    test_factors, test_codes = sample_codes(data, represent, n_test, rng)
    scores = np.zeros((codes.shape[1], len(data.factor_sizes)))
    ordered = [k for k, cat in enumerate(data.categorical) if not cat]
    cov = np.cov(np.concatenate([codes, factors[:, ordered]], axis=1), rowvar=False)
    d = codes.shape[1]
    var_z, var_v = np.diag(cov)[:d, None], np.diag(cov)[None, d:]
    r2 = np.zeros((d, len(ordered)))  # a dim that never changes explains nothing (not 0 / 0)
    np.divide(cov[:d, d:] ** 2, var_z * var_v, out=r2, where=(var_z > 1e-12) & (var_v > 0))
    scores[:, ordered] = r2
    for k in (k for k, cat in enumerate(data.categorical) if cat):
        for j in range(d):
            svm = quiet_fit(
                LinearSVC(C=0.01, class_weight="balanced", random_state=0), codes[:, j : j + 1], factors[:, k]
            )
            scores[j, k] = (svm.predict(test_codes[:, j : j + 1]) == test_factors[:, k]).mean()
    top = np.sort(scores, axis=0)[::-1]
    gaps = top[0] - (top[1] if d > 1 else 0)
    return {"score": float(gaps.mean()), "per_factor": gaps.tolist(), "n_train": n_train, "n_test": n_test}


def dci(data: GroundTruth, represent: Represent, rng, n_train: int = 10_000, n_test: int = 5_000) -> dict:
    """DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", section 2): per factor k, gradient boosted trees (scikit-learn defaults, as
    disentanglement_lib) predict v_k from the codes; their feature importances give R[j, k] >= 0.
    Disentanglement = sum_j rho_j (1 - H_K(P_j.)), P_jk = R_jk / sum_k R_jk, rho_j = sum_k R_jk / sum R;
    completeness = sum_k rho_k (1 - H_D(P~_.k)), P~_jk = R_jk / sum_j R_jk, rho_k = sum_j R_jk / sum R
    (entropies in bases K and D); informativeness = mean test accuracy of the trees."""
    from sklearn.ensemble import GradientBoostingClassifier

    factors, codes = sample_codes(data, represent, n_train, rng)
    test_factors, test_codes = sample_codes(data, represent, n_test, rng)
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    train_acc, test_acc = [], []
    for k in range(factors.shape[1]):
        trees = GradientBoostingClassifier(random_state=0).fit(codes, factors[:, k])
        importance[:, k] = np.abs(trees.feature_importances_)
        train_acc.append((trees.predict(codes) == factors[:, k]).mean())
        test_acc.append((trees.predict(test_codes) == test_factors[:, k]).mean())
    return {
        **dci_from_importance(importance),
        "informativeness": float(np.mean(test_acc)),
        "informativeness_train": float(np.mean(train_acc)),
        "importance": importance.tolist(),
        "n_train": n_train,
        "n_test": n_test,
    }


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """DCI disentanglement and completeness of an importance matrix R (D codes, K factors), as in ``dci``."""
    r = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code = 1 - _entropy(r + 1e-11, axis=1, base=r.shape[1])  # (D,)
    per_factor = 1 - _entropy(r + 1e-11, axis=0, base=r.shape[0])  # (K,)
    return {
        "disentanglement": float((per_code * r.sum(1) / r.sum()).sum()),
        "completeness": float((per_factor * r.sum(0) / r.sum()).sum()),
    }


def _entropy(weights: np.ndarray, axis: int, base: int) -> np.ndarray:
    """Entropy, in base ``base``, of the distributions ``weights`` normalised along ``axis``."""
    p = weights / weights.sum(axis, keepdims=True)
    return -(p * np.log(p)).sum(axis) / np.log(base) if base > 1 else np.zeros(p.shape[1 - axis])


def quiet_fit(model, x: np.ndarray, y: np.ndarray):
    """model.fit(x, y) without scikit-learn's convergence warnings (their callers fix the iteration counts)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


HEADLINE = {"beta_vae": "score", "factor_vae": "score", "mig": "score", "sap": "score", "dci": "disentanglement"}
METRICS = {"beta_vae": beta_vae_score, "factor_vae": factor_vae_score, "mig": mig, "sap": sap, "dci": dci}


def all_metrics(
    data: GroundTruth, represent: Represent, points: int = 10_000, seed: int = 0, log=None
) -> dict[str, dict]:
    """Every metric with ``points`` training points and points // 2 evaluation points (the protocols' 10,000
    and 5,000 by default); each metric draws from its own generator seeded by ``seed``; with its seconds."""
    sizes = {
        "beta_vae": {"n_train": points, "n_eval": points // 2},
        "factor_vae": {"n_train": points, "n_eval": points // 2, "n_variance": points},
        "mig": {"n_points": points},
        "sap": {"n_train": points, "n_test": points // 2},
        "dci": {"n_train": points, "n_test": points // 2},
    }
    results = {}
    for name, metric in METRICS.items():
        start = time.perf_counter()
        results[name] = metric(data, represent, np.random.default_rng(seed), **sizes[name])
        results[name]["seconds"] = time.perf_counter() - start
        if log:
            log(f"{name}: {results[name][HEADLINE[name]]:.3f} ({results[name]['seconds']:.0f} s)")
    return results
