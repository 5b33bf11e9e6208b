"""Procedural dSprites-like sprites: square, ellipse and heart on the dSprites factor grid.

Factors (class index -> value), as in dSprites without its constant colour:

===========  =====  ===================================
factor       size   values
===========  =====  ===================================
shape        3      0 square, 1 ellipse, 2 heart
scale        6      linspace(0.5, 1, 6)
orientation  40     linspace(0, 2*pi, 40) (0 and 2*pi both present)
pos_x        32     linspace(0, 1, 32)
pos_y        32     linspace(0, 1, 32)
===========  =====  ===================================

Geometry, for an image of side ``S`` pixels (``S`` = 64 or 32), pixel ``(row, col)``
sampled at its centre ``(row + 0.5, col + 0.5)``:

* sprite centre ``c_x = S * (0.25 + 0.5 * pos_x)``, ``c_y = S * (0.25 + 0.5 * pos_y)``
  (16 + 32 pos at S = 64; ``pos_y`` grows downwards, image rows);
* radius ``r = 0.2 * S * scale`` (12.8 px at S = 64, scale 1): every shape lies in
  the disc of radius ``r`` around the centre, so no rotation or position ever
  leaves the frame (margin 0.05 S);
* local coordinates (y up, rotation counter-clockwise on screen by ``theta``):
  ``u = ( cos(theta) dx + sin(theta) dy) / r``, ``v = (-sin(theta) dx + cos(theta) dy) / r``
  with ``dx = col + 0.5 - c_x``, ``dy = c_y - (row + 0.5)``;
* a pixel is on when the shape's implicit inside-test holds at ``(u, v)``:

  - square: ``max(|u|, |v|) <= 1/sqrt(2)``;
  - ellipse: ``u^2 + (v / 0.5)^2 <= 1`` (2:1, long axis along u);
  - heart: with ``x = 1.25 u``, ``y = 1.25 v + 0.25``,
    ``(x^2 + y^2 - 1)^3 - x^2 y^3 <= 0`` (the classical heart curve, whose
    smallest enclosing circle has centre (0, 0.25) and radius 1.25).

Some factors only (``vary``): the grid is then the product of the varying factors'
classes, every other factor sits at its class in :data:`FIXED_CLASSES` (square,
scale 1, orientation 0, the centre position), and the dataset's factors are the
varying ones only (so the disentanglement metrics draw from the images the data holds).

Rendering is vectorised over a batch: only a window of ``ceil(2 r_max) + 3``
pixels square around each centre is evaluated, then scattered into the frame.
"""

from __future__ import annotations

import math

import numpy as np

from ppl_vae.data.common import assemble, draw_subset, grid_index, split_options
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.storage import CHUNK, BitStorage, RenderStorage, Storage
from ppl_vae.errors import PplVaeError
from ppl_vae.registry import DATA_SOURCES

FACTOR_NAMES = ["shape", "scale", "orientation", "pos_x", "pos_y"]
FACTOR_SIZES = [3, 6, 40, 32, 32]
SHAPE_NAMES = ["square", "ellipse", "heart"]
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
GRID_SIZE = math.prod(FACTOR_SIZES)  # 737,280
RADIUS_FRACTION = 0.2
DEFAULT_N = 20_000
SIZES = (64, 32)
FIXED_CLASSES = {"shape": 0, "scale": 5, "orientation": 0, "pos_x": 16, "pos_y": 16}


def varying_factors(vary: str | list[str] | tuple[str, ...] | None) -> list[int]:
    """The columns of the varying factors, in grid order: every one for ``None``, else the
    names in ``vary`` (a sequence, or one comma-separated string as the CLI gives it)."""
    if vary is None:
        return list(range(len(FACTOR_NAMES)))
    given = vary.split(",") if isinstance(vary, str) else list(vary)
    names = {str(name).strip() for name in given} - {""}
    unknown = sorted(names - set(FACTOR_NAMES))
    if unknown or not names:
        raise PplVaeError(f"option vary must name shapes factors from {', '.join(FACTOR_NAMES)}"
                          f", comma-separated; got {vary!r}")
    return sorted(FACTOR_NAMES.index(name) for name in names)


def full_codes(codes: np.ndarray, varying: list[int]) -> np.ndarray:
    """Class codes of the varying factors ``(m, len(varying))`` -> all five ``(m, 5)``, every
    other factor at its :data:`FIXED_CLASSES` class."""
    codes = np.asarray(codes, dtype=np.int64)
    full = np.tile(np.array([FIXED_CLASSES[name] for name in FACTOR_NAMES], dtype=np.int64),
                   (len(codes), 1))
    full[:, varying] = codes
    return full


def factor_values(codes: np.ndarray) -> dict[str, np.ndarray]:
    """Map class indices ``(m, 5)`` to factor values (scale, radians, positions)."""
    return {
        "shape": codes[:, 0],
        "scale": SCALES[codes[:, 1]],
        "orientation": ORIENTATIONS[codes[:, 2]],
        "pos_x": POSITIONS[codes[:, 3]],
        "pos_y": POSITIONS[codes[:, 4]],
    }


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Implicit inside-test of one shape in unit-disc local coordinates."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= np.float32(1.0 / math.sqrt(2.0))
    if shape == 1:
        return u * u + 4.0 * v * v <= 1.0
    x = 1.25 * u
    y = 1.25 * v + 0.25
    x2 = x * x
    return (x2 + y * y - 1.0) ** 3 - x2 * y * y * y <= 0.0


def render(codes: np.ndarray, size: int = 64, chunk: int = 2048) -> np.ndarray:
    """Rasterise sprites for factor class indices.

    Args:
        codes: Integer array ``(m, 5)``: shape, scale, orientation, pos_x, pos_y classes.
        size: Image side in pixels (64 or 32).
        chunk: Images processed per vectorised step (bounds memory).

    Returns:
        uint8 array ``(m, size, size)`` of 0/1 pixels.
    """
    codes = np.asarray(codes, dtype=np.int64)
    out = np.zeros((len(codes), size, size), dtype=np.uint8)
    for start in range(0, len(codes), chunk):
        _render_chunk(codes[start : start + chunk], size, out[start : start + chunk])
    return out


def _render_chunk(codes: np.ndarray, size: int, out: np.ndarray) -> None:
    """Render one chunk into ``out`` (a view of the full output)."""
    values = factor_values(codes)
    radius = (RADIUS_FRACTION * size * values["scale"]).astype(np.float32)
    cx = (size * (0.25 + 0.5 * values["pos_x"])).astype(np.float32)
    cy = (size * (0.25 + 0.5 * values["pos_y"])).astype(np.float32)
    window = math.ceil(2 * RADIUS_FRACTION * size) + 3
    steps = np.arange(window)
    col0 = np.clip(np.floor(cx - radius).astype(np.int64) - 1, 0, size - window)
    row0 = np.clip(np.floor(cy - radius).astype(np.int64) - 1, 0, size - window)
    cols = col0[:, None] + steps  # (m, W)
    rows = row0[:, None] + steps
    dx = (cols + 0.5 - cx[:, None]).astype(np.float32)[:, None, :]  # (m, 1, W)
    dy = (cy[:, None] - (rows + 0.5)).astype(np.float32)[:, :, None]  # (m, W, 1)
    cos = (np.cos(values["orientation"]) / radius).astype(np.float32)[:, None, None]
    sin = (np.sin(values["orientation"]) / radius).astype(np.float32)[:, None, None]
    u = cos * dx + sin * dy  # (m, W, W)
    v = cos * dy - sin * dx
    inside = np.empty(u.shape, dtype=bool)
    for shape in range(3):
        pick = codes[:, 0] == shape
        if pick.any():
            inside[pick] = _inside(shape, u[pick], v[pick])
    which = np.arange(len(codes))[:, None, None]
    out[which, rows[:, :, None], cols[:, None, :]] = inside


@DATA_SOURCES.register("shapes", "square/ellipse/heart sprites rendered on the dSprites "
                       "factor grid", size="image side in pixels, 64 or 32",
                       vary="factors that vary, comma-separated (e.g. pos_x,pos_y,scale); the "
                            "others stay at one value (default: all five)")
def load_shapes(*, n: int | str | None = None, size: int = 64, vary: str | None = None,
                **shared: object) -> Dataset:
    """Draw a random subset of the 737,280-point shapes grid (or of its varying factors').

    The ``n`` factor combinations are drawn uniformly without replacement from
    the grid (so train and test never share an image) with
    ``numpy.random.default_rng(seed)``, then split ``round(n * test_fraction)``
    to test. Default ``n`` is 20,000 (18,000 train / 2,000 test), about a
    second of rendering, or the whole grid when it is smaller; ``n="all"`` (or
    737280) is the whole grid.

    Args:
        n: Total number of images (train + test), at most the grid's size, ``"all"``, or
            None (20,000, or the whole grid when smaller).
        size: Image side, 64 (as dSprites) or 32 (fast CPU work).
        vary: The factors that vary (names, or one comma-separated string); the
            others stay at their :data:`FIXED_CLASSES` class and are not among the
            dataset's factors. ``None``: all five.
        **shared: ``binarize`` is a no-op on these binary images except that
            ``"dynamic"`` sets the trainer flag. ``storage``: ``"auto"``: rendered
            once, kept packed (``size**2 / 8`` bytes an image: 377 MB for the whole
            grid at 64x64); ``"render"``: only the factor codes are kept and every
            batch is rendered when drawn (memory independent of ``n``);
            ``"float32"``: rendered once into float32 tensors (``16 size**2`` bytes
            an image).

    Returns:
        A :class:`Dataset` with images ``(n, 1, size, size)`` in {0, 1}, factors
        and a renderer for ``images_for_factors``; the batches of every
        ``storage`` are the same float32 values.
    """
    split = split_options("shapes", shared, ("render",))
    if isinstance(size, bool) or not isinstance(size, int) or size not in SIZES:
        raise PplVaeError(f"option size must be 64 or 32 for shapes, got {size!r}")
    varying = varying_factors(vary)
    sizes = [FACTOR_SIZES[j] for j in varying]
    grid = math.prod(sizes)
    n, train_index, test_index = draw_subset(n, min(DEFAULT_N, grid), grid, "the shapes grid",
                                             split)
    train_codes = _decode(train_index, sizes)
    test_codes = _decode(test_index, sizes)

    def images(codes: np.ndarray) -> np.ndarray:
        return render(full_codes(codes, varying), size)[:, None]

    def stored(codes: np.ndarray) -> Storage:
        if split.storage == "render":
            return RenderStorage(codes, images, (1, size, size))
        blocks = (images(codes[i:i + CHUNK]) for i in range(0, len(codes), CHUNK))
        return BitStorage.from_chunks(blocks, (1, size, size))

    spec = {"name": "shapes", "n": n, "size": size}
    if vary is not None:
        spec["vary"] = ",".join(FACTOR_NAMES[j] for j in varying)
    return assemble(
        spec, split, stored(train_codes), stored(test_codes),
        train_factors=train_codes, test_factors=test_codes,
        factor_names=[FACTOR_NAMES[j] for j in varying], factor_sizes=sizes, renderer=images,
    )


def _decode(flat: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Flat grid indices -> class codes ``(m, len(sizes))`` (inverse of ``grid_index``)."""
    codes = np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)
    assert (grid_index(codes, sizes) == flat).all()
    return codes
