"""What the explorer's API accepts and returns. Pydantic checks types, finiteness and fixed bounds; the checks
that depend on the run (vector length = latent size, code and label ranges, image indices) raise RequestError."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..errors import VaelabError

MAX_ABS_LATENT = 1e4  # |z_j| above this decodes to nothing useful and risks overflow in wide layers
MAX_LATENT_DIM = 4096
MAX_CODES = 64
MAX_CATEGORIES = 10_000
MAX_INDEX = 10**9
MAX_STEPS = 32

Latent = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS_LATENT, le=MAX_ABS_LATENT)]
Category = Annotated[int, Field(ge=0, lt=MAX_CATEGORIES)]
Label = Annotated[int, Field(ge=0, lt=MAX_CATEGORIES)]
Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]


class RequestError(VaelabError):
    """A request that is well-formed JSON but wrong for this run (e.g. a latent of the wrong length)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class DecodeRequest(Strict):
    """A decoder input: the continuous latents, a category per categorical (JointVAE), a label (conditional)."""

    z: list[Latent] = Field(max_length=MAX_LATENT_DIM, description="continuous latents, one per dimension")
    codes: list[Category] = Field(default=[], max_length=MAX_CODES, description="JointVAE: a category each")
    label: Label | None = Field(default=None, description="conditional models: the class to decode")


class EncodeRequest(Strict):
    index: Index = Field(description="an image of the run's test split")


class InterpolateRequest(Strict):
    i: Index = Field(description="first test image")
    j: Index = Field(description="second test image")
    steps: int = Field(default=10, ge=2, le=MAX_STEPS, description="decoded points from i to j, both included")
    slerp: bool = Field(default=False, description="spherical instead of linear interpolation")


class RunInfo(BaseModel):
    """A run's latent spec and how its dimensions rank, for building the controls."""

    id: int
    name: str
    model: str
    image_shape: list[int] = Field(description="(C, H, W)")
    latent_dim: int
    discrete: list[int] = Field(description="categories of each categorical latent (JointVAE), else []")
    num_classes: int = Field(description="labels of a conditional model, else 0")
    class_names: list[str] | None
    prior_mean: list[float] = Field(description="mean of the prior of each continuous dimension")
    prior_std: list[float] = Field(description="its std: sliders move in these units")
    order: list[int] = Field(description="continuous dimensions, largest KL (or code variance) first")
    kl: list[float] | None = Field(description="mean KL per dimension on test images, nats (None: point codes)")
    active: list[bool] = Field(description="per dimension: is it an active unit, as vaelab eval counts them")
    active_summary: str = Field(description="how many dimensions are active, and the definition, in words")
    n_test: int = Field(description="images in the test split")


class LatentMap(BaseModel):
    """Test latents as 2-D points (2-D latents as they are, else PCA); a point p is the latent
    origin + p @ basis."""

    points: list[list[float]]
    labels: list[int] | None
    axes: list[str]
    method: str
    origin: list[float]
    basis: list[list[float]]
    colours: list[str] = Field(description="a CSS colour per label")
    class_names: list[str] | None = Field(description="a name per label, for the legend (None: the numbers)")


class Encoded(BaseModel):
    """An image, encoded (posterior mean) and reconstructed."""

    z: list[float]
    codes: list[int]
    label: int | None
    point: list[float] = Field(description="where the image lands on the latent map")
    image: str = Field(description="the image the encoder saw, as a PNG data URL")
    reconstruction: str = Field(description="its reconstruction, as a PNG data URL")
