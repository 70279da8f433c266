"""Maps from raw reward-model scores to the scale the reward slot is trained on.

A scaler is fitted on the training rewards, saved with the model (inside `config.json` and as
`scaler.json`), and applied by the model itself, so users always give targets in raw reward-model
units. Every scaler is strictly increasing and keeps extrapolating beyond the training range, so
a target above the training maximum still maps to a larger value than the maximum does.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import numpy as np

from rewardcond.artifacts import write_json


def _finite_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} must be finite; got {bad} NaN/inf value(s) out of {array.size}")
    return array


class RewardScaler:
    """Base class: `fit(rewards)` on training rewards, then `transform(values)` raw -> scaled."""

    kind: ClassVar[str] = ""

    def fit(self, rewards: Any) -> RewardScaler:
        """Fit on training rewards (1-d, finite, at least two distinct values) and return self."""
        rewards = _finite_array(rewards, "rewards").ravel()
        if np.unique(rewards).size < 2:
            raise ValueError(
                f"rewards must hold at least two distinct values to fit a {self.kind!r} scaler; "
                f"got {rewards.size} value(s) with {np.unique(rewards).size} distinct"
            )
        self._fit(rewards)
        return self

    def transform(self, values: Any) -> np.ndarray:
        """Scale raw rewards (any shape, finite) into float64 values of the same shape."""
        values = np.asarray(_finite_array(values, "values"))
        if not self.is_fitted:
            raise ValueError(f"the {self.kind!r} scaler is not fitted: call fit(rewards) first")
        return self._transform(values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, `{"kind": ..., **parameters}`."""
        return {"kind": self.kind, **self._params()}

    @staticmethod
    def from_dict(state: dict[str, Any]) -> RewardScaler:
        """Rebuild any scaler from `to_dict()` output."""
        state = dict(state)
        kind = state.pop("kind", None)
        scaler = make_scaler(kind)
        scaler._load(state)
        return scaler

    def save(self, path: str | os.PathLike) -> None:
        """Write `to_dict()` as JSON, atomically."""
        write_json(path, self.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RewardScaler) and self.to_dict() == other.to_dict()

    # Subclasses implement these.
    is_fitted: bool = True

    def _fit(self, rewards: np.ndarray) -> None:
        raise NotImplementedError

    def _transform(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    def _load(self, params: dict[str, Any]) -> None:
        if params:
            raise ValueError(f"unexpected scaler fields for {self.kind!r}: {sorted(params)}")


class IdentityScaler(RewardScaler):
    """Raw rewards unchanged (fitting is a no-op)."""

    kind = "identity"

    def _fit(self, rewards: np.ndarray) -> None:
        pass

    def _transform(self, values: np.ndarray) -> np.ndarray:
        return values.copy()


class _AffineScaler(RewardScaler):
    """`(value - shift) / scale` with parameters fitted on the training rewards."""

    shift: float | None = None
    scale: float | None = None

    @property
    def is_fitted(self) -> bool:
        return self.shift is not None

    def _transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.shift) / self.scale

    def _params(self) -> dict[str, Any]:
        return {"shift": self.shift, "scale": self.scale}

    def _load(self, params: dict[str, Any]) -> None:
        params = dict(params)
        self.shift, self.scale = params.pop("shift"), params.pop("scale")
        super()._load(params)


class StandardizeScaler(_AffineScaler):
    """Zero mean, unit standard deviation on the training rewards."""

    kind = "standardize"

    def _fit(self, rewards: np.ndarray) -> None:
        self.shift, self.scale = float(rewards.mean()), float(rewards.std())


class MinMaxScaler(_AffineScaler):
    """Training minimum -> 0, maximum -> 1; linear beyond."""

    kind = "minmax"

    def _fit(self, rewards: np.ndarray) -> None:
        self.shift, self.scale = float(rewards.min()), float(rewards.max() - rewards.min())


class QuantileScaler(RewardScaler):
    """Rank scaler: the empirical CDF of the training rewards, in [0, 1] on the training range.

    The CDF is stored at `n_quantiles` points and interpolated linearly. Outside the training
    range it continues linearly with the min-max slope (`1 / (max - min)`), so targets above the
    training maximum map above 1 instead of all collapsing onto 1.
    """

    kind = "quantile"

    def __init__(self, n_quantiles: int = 1001):
        self.n_quantiles = n_quantiles
        self.quantiles: np.ndarray | None = None
        self.probabilities: np.ndarray | None = None

    @property
    def is_fitted(self) -> bool:
        return self.quantiles is not None

    def _fit(self, rewards: np.ndarray) -> None:
        probabilities = np.linspace(0.0, 1.0, self.n_quantiles)
        quantiles = np.quantile(rewards, probabilities)
        # Tied quantiles (many equal rewards) share their mean probability: it stays a function.
        self.quantiles, inverse = np.unique(quantiles, return_inverse=True)
        self.probabilities = np.bincount(inverse, weights=probabilities) / np.bincount(inverse)
        self.probabilities[[0, -1]] = 0.0, 1.0

    def _transform(self, values: np.ndarray) -> np.ndarray:
        low, high = self.quantiles[0], self.quantiles[-1]
        slope = 1.0 / (high - low)
        inside = np.interp(values, self.quantiles, self.probabilities)
        return np.where(
            values > high,
            1.0 + (values - high) * slope,
            np.where(values < low, (values - low) * slope, inside),
        )

    def _params(self) -> dict[str, Any]:
        fitted = self.quantiles is not None
        return {
            "n_quantiles": self.n_quantiles,
            "quantiles": self.quantiles.tolist() if fitted else None,
            "probabilities": self.probabilities.tolist() if fitted else None,
        }

    def _load(self, params: dict[str, Any]) -> None:
        params = dict(params)
        self.n_quantiles = params.pop("n_quantiles")
        quantiles, probabilities = params.pop("quantiles"), params.pop("probabilities")
        if quantiles is not None:
            self.quantiles = np.asarray(quantiles, dtype=np.float64)
            self.probabilities = np.asarray(probabilities, dtype=np.float64)
        super()._load(params)


SCALERS: dict[str, type[RewardScaler]] = {
    cls.kind: cls for cls in (IdentityScaler, StandardizeScaler, MinMaxScaler, QuantileScaler)
}


def make_scaler(kind: str) -> RewardScaler:
    """A new, unfitted scaler of `kind` (identity | standardize | minmax | quantile)."""
    if kind not in SCALERS:
        raise ValueError(f"kind must be one of {sorted(SCALERS)}; got {kind!r}")
    return SCALERS[kind]()


def load_scaler(path: str | os.PathLike) -> RewardScaler:
    """Read a scaler written by `RewardScaler.save` (or the `scaler.json` next to a model)."""
    with open(path, encoding="utf-8") as handle:
        return RewardScaler.from_dict(json.load(handle))
