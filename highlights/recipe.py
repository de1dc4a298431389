"""What made a feature sequence: the feature recipe, and the check that two recipes agree.

Features are only comparable when the same backbone, with the same weights file, saw frames
shaped, normalised and sampled the same way at the same rate, run by the same inference backend
at the same precision. A `FeatureRecipe` names all of that; its `digest` keys the feature cache
and the checkpoints, is stored in every features file and in the model manifest, and names
the AWS jobs that make features. Features or a model of another recipe are refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from highlights.errors import InputError, ModelError
from highlights.timecode import as_rate, rate_text

if TYPE_CHECKING:
    from highlights.backbones import Backbone

DIGEST_LENGTH = 16  # hex digits: 64 bits, ample to tell recipes apart, short enough for job names


class RecipeMismatch(ModelError):
    """Features (or a backbone) were made by another recipe than the model was trained on."""


@dataclass(frozen=True)
class FeatureRecipe:
    backbone: str
    weights_sha256: str  # of the weights file the backbone was loaded from
    resize_short: int  # frames' short side is resized to this many pixels...
    crop: int  # ...then centre-cropped to a crop x crop square
    normalisation: str  # how pixels become the backbone's input (names a documented formula)
    sampler: str  # which pictures become frames (`highlights.sampling.SAMPLER`)
    rate: Fraction  # frames sampled per second, exact
    backend: str = "keras"  # what runs the backbone
    precision: str = "float32"  # the numbers it computes in

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", as_rate(self.rate))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": rate_text(self.rate)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the text the digest is taken of."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:DIGEST_LENGTH]

    def describe(self) -> str:
        """One line naming what differs between recipes, ending with the digest."""
        return (
            f"{self.backbone} (weights {self.weights_sha256[:12]}, {self.backend} "
            f"{self.precision}, {self.crop}/{self.resize_short} px, {self.normalisation}) "
            f"at {rate_text(self.rate)} frames/s by {self.sampler} [{self.digest}]"
        )

    @classmethod
    def from_dict(cls, data: Any, source: str) -> FeatureRecipe:
        """Parse a recipe read from a file; ModelError naming `source` if it is not one."""
        names = {"backbone", "weights_sha256", "resize_short", "crop", "normalisation", "sampler"}
        names |= {"rate", "backend", "precision"}
        if not isinstance(data, dict) or set(data) != names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ModelError(f"{source}: not a feature recipe (fields {got})")
        try:
            recipe = cls(**data)
        except (TypeError, ValueError, InputError) as exc:
            raise ModelError(f"{source}: not a feature recipe ({exc})") from None
        texts = ("backbone", "weights_sha256", "normalisation", "sampler", "backend", "precision")
        if not all(isinstance(getattr(recipe, name), str) for name in texts) or not all(
            isinstance(getattr(recipe, name), int) and getattr(recipe, name) > 0
            for name in ("resize_short", "crop")
        ):
            raise ModelError(f"{source}: feature recipe has a field of the wrong type: {data}")
        return recipe

    @classmethod
    def from_json(cls, text: str, source: str) -> FeatureRecipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: feature recipe is not JSON: {exc}") from None
        return cls.from_dict(data, source)


def recipe_of(backbone: Backbone, rate: Fraction | float | str) -> FeatureRecipe:
    """The recipe of features `backbone` makes from frames sampled at `rate` frames/s."""
    from highlights.sampling import SAMPLER

    return FeatureRecipe(
        backbone=backbone.name,
        weights_sha256=backbone.weights_sha256,
        resize_short=backbone.geometry.resize_short,
        crop=backbone.geometry.crop,
        normalisation=backbone.normalisation,
        sampler=SAMPLER,
        rate=as_rate(rate),
        backend=backbone.backend,
        precision=backbone.precision,
    )


def check_recipe(expected: FeatureRecipe, actual: FeatureRecipe | None, what: str) -> None:
    """Raise RecipeMismatch (one line, naming both recipes) unless `actual` is `expected`.

    `what` says where the features come from, e.g. "features.npz".
    """
    if actual is None:
        raise RecipeMismatch(
            f"{what}: features record no recipe (written by an older version); the model "
            f"needs {expected.describe()}; extract the features again"
        )
    if actual != expected:
        raise RecipeMismatch(
            f"{what}: features made by {actual.describe()}, but the model was trained on "
            f"{expected.describe()}; use the model's backbone, weights and rate, or retrain"
        )
