"""Style augmentation (Jackson et al. 2019): restyle training images with random painting styles.

An arbitrary-method network (Ghiasi et al. 2017) stylises each image with the embedding
z = α·z_random + (1 − α)·P(image) (Jackson et al. §3), where z_random ~ N(μ, Σ) is fitted to the
style predictor P's embeddings of a painting set and α is the strength. Shapes survive, textures,
contrast and colours change: an augmentation against domain shift. `StyleAugment` is a
torchvision v2 transform: tensors in, tensors out, one image or a batch, on the input's device.
"""

from collections.abc import Sequence
from pathlib import Path

import PIL.Image
import torch
from torch import Tensor, nn
from torch.utils.data import get_worker_info
from torchvision import tv_tensors
from torchvision.transforms import v2

from nst.errors import UserError
from nst.image import from_pil
from nst.inference import (
    ArbitraryStylizer,
    check_image_size,
    load_stylizer,
    read_source,
    same_size_batches,
)
from nst.networks import ConditionalTransformNet
from nst.predictors import resize_for_predictor

DISTRIBUTION_KEY = "style_distribution"
DEFAULT_MODEL = "arbitrary"  # the zoo's arbitrary model, which ships its style distribution
RIDGE = 1e-4  # added to Σ's diagonal, relative to its mean variance, so Σ is never singular


def is_plain_tensor(item) -> bool:
    """A tensor that is no `tv_tensors` type (boxes, masks and labels pass through untouched)."""
    return isinstance(item, Tensor) and not isinstance(item, tv_tensors.TVTensor)


def fit_distribution(embeddings: Tensor) -> dict[str, Tensor]:
    """μ and a lower Cholesky factor L of Σ (L·Lᵀ = Σ + ridge·I) of N×E embeddings (§3).

    Σ is the unbiased sample covariance; the small ridge keeps it positive definite when there
    are fewer paintings than embedding dimensions. The authors factor Σ by an SVD instead: the
    same distribution.
    """
    if embeddings.dim() != 2 or len(embeddings) < 2:
        raise UserError("Fitting a style distribution needs at least 2 paintings.")
    embeddings = embeddings.detach().double()
    mean = embeddings.mean(dim=0)
    covariance = embeddings.T.cov() if embeddings.shape[1] > 1 else embeddings.T.var()[None, None]
    ridge = RIDGE * covariance.diagonal().mean().clamp_min(1e-12)
    cholesky = torch.linalg.cholesky(covariance + ridge * torch.eye(len(mean), dtype=mean.dtype))
    return {"mean": mean.float(), "cholesky": cholesky.float(), "paintings": len(embeddings)}


@torch.no_grad()
def painting_embeddings(
    predictor: nn.Module, paintings: str | Path | Tensor | Sequence[Tensor], size: int | None = 256
) -> Tensor:
    """P's N×E embeddings of a painting folder, an N×3×H×W batch or a list of images in [0, 1],
    each resized (long side) to `size`, as `style_embedding` does for a style image; neighbours of
    one size go through P together."""
    if isinstance(paintings, (str, Path)):
        from nst.image_sets import folder_images

        folder = Path(paintings).expanduser()
        paintings = [from_pil(record["image"]) for record in folder_images([folder])]
    elif isinstance(paintings, Tensor):
        paintings = list(paintings.unsqueeze(0) if paintings.dim() == 3 else paintings.split(1))
    resized = (
        (index, resize_for_predictor(painting, size)) for index, painting in enumerate(paintings)
    )
    return torch.cat([predictor(batch) for _, batch in same_size_batches(resized, 16)])


def training_distribution(
    checkpoint: str | Path, folders: Sequence[str], holdout: int | str | list[str] = 0
) -> dict[str, Tensor]:
    """The style distribution of an arbitrary checkpoint's training paintings: the images of
    `folders` less those `holdout` keeps out (as `nst.style_data.StyleSet` splits them), each
    read by its predictor at 256 px."""
    from nst.style_data import StyleSet

    training, _ = StyleSet(path=list(folders), holdout=holdout).load(workers=0)
    predictor = load_stylizer(checkpoint, kind="arbitrary").predictor
    paintings = [from_pil(record["image"]) for record in training]
    return fit_distribution(painting_embeddings(predictor, paintings))


def read_distribution(source: str | Path | dict) -> dict[str, Tensor]:
    """A fitted distribution from a file `save_distribution` wrote, a zoo model or a checkpoint
    (a path or its dict)."""
    stored = read_source(source)[0] if isinstance(source, (str, Path)) else source
    distribution = stored.get(DISTRIBUTION_KEY) if isinstance(stored, dict) else None
    if not isinstance(distribution, dict) or {"mean", "cholesky"} - distribution.keys():
        raise UserError(f"{source} holds no fitted style distribution; fit one from paintings.")
    return distribution


class StyleAugment(v2.Transform):
    """Restyle images with random styles (Jackson et al. 2019, §3): a torchvision v2 transform.

    Input: a 3×H×W or N×3×H×W float tensor in [0, 1], or uint8 (also `tv_tensors.Image`); the
    output has the same shape, dtype, device and type. Each image is augmented with probability
    `p`, with a strength α drawn uniformly from `strength` (a float, or a (low, high) range):
    z = α·(μ + L·ε) + (1 − α)·P(image), ε ~ N(0, I). Random draws come from a CPU generator
    seeded by `seed` (`None`: torch's global generator), so results do not depend on the device.
    With no networks given it uses the zoo's arbitrary model and the distribution of its
    training paintings (`StyleAugment()`); `from_checkpoint` takes a user's own.
    """

    _transformed_types = (is_plain_tensor, tv_tensors.Image, PIL.Image.Image)

    def __init__(
        self,
        predictor: nn.Module | None = None,
        transform: ConditionalTransformNet | None = None,
        distribution: dict[str, Tensor] | None = None,
        strength: float | tuple[float, float] = 0.5,
        p: float = 1.0,
        seed: int | None = None,
        predictor_size: int | None = 256,
    ):
        super().__init__()
        if predictor is None or transform is None:
            if predictor is not None or transform is not None:
                raise UserError("StyleAugment needs both networks, or neither (the zoo's).")
            checkpoint, label = read_source(DEFAULT_MODEL)
            networks = ArbitraryStylizer.from_checkpoint(checkpoint, label)
            predictor, transform = networks.predictor, networks.transform
            distribution = distribution or read_distribution(checkpoint)
        if distribution is None:
            raise UserError("StyleAugment needs a style distribution: use from_checkpoint.")
        low, high = (strength, strength) if isinstance(strength, (int, float)) else strength
        if not 0.0 <= low <= high <= 1.0:
            raise UserError(f"strength must be in [0, 1] or a range (low, high) in it: {strength}.")
        if not 0.0 <= p <= 1.0:
            raise UserError(f"p (the chance of augmenting an image) must be in [0, 1], got {p}.")
        if distribution["mean"].numel() != transform.style_params.in_features:
            raise UserError(
                f"The style distribution has {distribution['mean'].numel()} dimensions but the "
                f"network's embeddings {transform.style_params.in_features}; fit it again with "
                "this checkpoint's paintings."
            )
        self.predictor, self.network = predictor.eval(), transform.eval()
        self.register_buffer("mean", distribution["mean"].float().reshape(-1))
        self.register_buffer("cholesky", distribution["cholesky"].float())
        self.strength, self.p, self.seed = (float(low), float(high)), float(p), seed
        self.predictor_size = predictor_size
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.worker = None  # the DataLoader worker the generator was last seeded for

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        paintings: str | Path | Tensor | Sequence[Tensor] | None = None,
        strength: float | tuple[float, float] = 0.5,
        p: float = 1.0,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        predictor_size: int | None = 256,
    ) -> "StyleAugment":
        """A StyleAugment with the networks of an arbitrary-method checkpoint or zoo model. The
        style distribution is fitted to `paintings` (a folder, a batch or a list of images), read
        from a `.pt` file `save_distribution` wrote, or, with `paintings=None`, read from the
        checkpoint."""
        distribution = None  # read before the networks are built, so a mistake stops at once
        if paintings is None:
            try:
                distribution = read_distribution(path)
            except UserError:
                raise UserError(
                    f"{path} holds no style distribution; pass paintings=FOLDER (or a saved "
                    ".pt distribution) to fit one."
                ) from None
        elif isinstance(paintings, (str, Path)) and Path(paintings).suffix == ".pt":
            distribution = read_distribution(paintings)
        elif isinstance(paintings, (str, Path)) and not Path(paintings).expanduser().is_dir():
            raise UserError(f"Painting folder not found: {paintings}; give a folder of paintings.")
        networks = load_stylizer(path, kind="arbitrary")
        if distribution is None:
            embeddings = painting_embeddings(networks.predictor, paintings, predictor_size)
            distribution = fit_distribution(embeddings)
        augment = cls(
            networks.predictor, networks.transform, distribution, strength, p, seed, predictor_size
        )
        return augment.to(device)

    @property
    def distribution(self) -> dict[str, Tensor]:
        """The fitted normal: μ and the Cholesky factor L of Σ."""
        return {"mean": self.mean, "cholesky": self.cholesky}

    def save_distribution(self, path: str | Path) -> Path:
        """Write μ and L to a small `.pt` file of plain tensors (reads with weights_only=True)."""
        path = Path(path)
        distribution = {key: value.cpu() for key, value in self.distribution.items()}
        torch.save({DISTRIBUTION_KEY: distribution}, path)
        return path

    def check_inputs(self, flat_inputs: list) -> None:
        if any(isinstance(item, PIL.Image.Image) for item in flat_inputs):
            raise UserError("StyleAugment works on tensors; put v2.ToImage() before it.")

    def uniform(self, count: int) -> Tensor:
        """`count` draws from U(0, 1) with the transform's generator."""
        return torch.rand(count, generator=self.worker_generator())

    def worker_generator(self) -> torch.Generator | None:
        """The seeded generator, re-seeded once in each DataLoader worker from (seed, worker seed)
        so workers draw different styles; torch seeds its global generator per worker likewise."""
        worker = get_worker_info()
        if self.generator is not None and worker is not None and self.worker != worker.seed:
            self.generator.manual_seed(hash((self.seed, worker.seed)) % 2**63)
            self.worker = worker.seed
        return self.generator

    def make_params(self, flat_inputs: list) -> dict:
        """Per image of the batch: whether to augment it, α, and ε ~ N(0, I) for z_random."""
        image = next(item for item in flat_inputs if isinstance(item, Tensor))
        count = len(image) if image.dim() == 4 else 1
        chosen = self.uniform(count) < self.p
        low, high = self.strength
        strength = low + (high - low) * self.uniform(count)
        noise = torch.randn(count, len(self.mean), generator=self.worker_generator())
        return {"chosen": chosen, "strength": strength, "noise": noise}

    def transform(self, inpt: Tensor, params: dict) -> Tensor:
        """Restyle the chosen images of `inpt` (3×H×W or N×3×H×W) in one batch."""
        images = inpt if inpt.dim() == 4 else inpt.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise UserError(f"StyleAugment needs 3×H×W or N×3×H×W RGB images, got {inpt.shape}.")
        check_image_size(images, "The image to augment")
        chosen = params["chosen"]
        if not chosen.any():
            return inpt
        floats = images.as_subclass(Tensor).float()
        if not images.is_floating_point():
            floats = floats / 255
        indices = chosen.nonzero().squeeze(1).to(images.device)
        styled = self.restyle(floats[indices], params["strength"][chosen], params["noise"][chosen])
        if not images.is_floating_point():
            styled = styled.mul(255).round()
        output = images.as_subclass(Tensor).index_copy(0, indices, styled.to(images.dtype))
        output = output if inpt.dim() == 4 else output[0]
        return tv_tensors.wrap(output, like=inpt) if isinstance(inpt, tv_tensors.Image) else output

    @torch.no_grad()
    def restyle(self, images: Tensor, strength: Tensor, noise: Tensor) -> Tensor:
        """T(images, α·(μ + L·ε) + (1 − α)·P(images)): Jackson et al. §3 on an N×3×H×W batch."""
        if self.mean.device != images.device:
            self.to(images.device)
        strength, noise = strength.to(images.device)[:, None], noise.to(images.device)
        embedding = self.mean + noise @ self.cholesky.T
        if (strength < 1).any():
            own = self.predictor(resize_for_predictor(images, self.predictor_size))
            embedding = torch.lerp(own, embedding, strength)
        return self.network(images, embedding).clamp(0, 1)
