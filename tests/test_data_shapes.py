"""The procedural `shapes` dataset: geometry read back from the pixels, factors, spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppl_vae.data import load
from ppl_vae.data.common import grid_index
from ppl_vae.data.shapes import FACTOR_SIZES, render
from ppl_vae.errors import PplVaeError

SQUARE, ELLIPSE, HEART = 0, 1, 2


def centroid(image: np.ndarray) -> tuple[float, float]:
    """Centre of mass (x = column, y = row) in pixel coordinates, pixel centres at i + 0.5."""
    rows, cols = np.nonzero(image)
    return float(cols.mean() + 0.5), float(rows.mean() + 0.5)


def one(shape: int, scale: int = 5, orientation: int = 0, x: int = 15, y: int = 15,
        size: int = 64) -> np.ndarray:
    return render(np.array([[shape, scale, orientation, x, y]]), size)[0]


@pytest.mark.parametrize("size", [64, 32])
@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_position_moves_the_sprite_by_half_the_frame(shape, size):
    for orientation in (0, 7, 23):
        left = centroid(one(shape, orientation=orientation, x=0, size=size))
        right = centroid(one(shape, orientation=orientation, x=31, size=size))
        top = centroid(one(shape, orientation=orientation, y=0, size=size))
        bottom = centroid(one(shape, orientation=orientation, y=31, size=size))
        # centre px = S/4 + S/2 * pos: pos 0 -> 1 moves the sprite by exactly S/2 pixels.
        assert right[0] - left[0] == pytest.approx(size / 2, abs=1e-9)
        assert right[1] == pytest.approx(left[1], abs=1e-9)
        assert bottom[1] - top[1] == pytest.approx(size / 2, abs=1e-9)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE])
def test_point_symmetric_shapes_are_centred_where_the_formula_says(shape):
    # S/4 = 16 is a pixel boundary, so the sampled square/ellipse is point-symmetric about it.
    for orientation in (0, 5, 13):
        assert centroid(one(shape, orientation=orientation, x=0, y=0)) == pytest.approx((16, 16))
        assert centroid(one(shape, orientation=orientation, x=31, y=0)) == pytest.approx((48, 16))


def test_areas_match_the_geometry():
    r = 0.2 * 64  # circumradius at scale 1
    # Pixel sampling errs by up to a perimeter's worth of pixels; averaged over
    # orientations and positions the count converges to the area.
    codes = np.array([[0, 5, o, x, 3] for o in range(40) for x in range(0, 32, 4)])
    square = render(codes, 64).sum(axis=(1, 2)).mean()
    codes[:, 0] = ELLIPSE
    ellipse = render(codes, 64).sum(axis=(1, 2)).mean()
    assert square == pytest.approx(2 * r * r, rel=0.01)  # side r * sqrt(2)
    assert ellipse == pytest.approx(np.pi * r * r / 2, rel=0.01)  # semi-axes r and r/2
    for shape in (SQUARE, ELLIPSE, HEART):
        for orientation in (0, 11, 30):
            big = one(shape, scale=5, orientation=orientation).sum()
            small = one(shape, scale=0, orientation=orientation).sum()
            assert big / small == pytest.approx(4.0, rel=0.12)  # scale 0.5 -> 1: area x4


def test_heart_rotates_counter_clockwise():
    upright = one(HEART, orientation=0)
    rows, cols = np.indices(upright.shape)
    cx = cy = 64 * (0.25 + 0.5 * 15 / 31)
    for k in (5, 10, 20, 30):
        theta = 2 * np.pi * k / 39
        # Rotate the upright mask by theta (y up, counter-clockwise): backward-map each pixel.
        dx, dy = cols + 0.5 - cx, cy - (rows + 0.5)
        sx = np.cos(theta) * dx + np.sin(theta) * dy
        sy = -np.sin(theta) * dx + np.cos(theta) * dy
        src_col = np.clip(np.floor(sx + cx), 0, 63).astype(int)
        src_row = np.clip(np.floor(cy - sy), 0, 63).astype(int)
        expected = upright[src_row, src_col]
        rendered = one(HEART, orientation=k)
        iou = (expected & rendered).sum() / (expected | rendered).sum()
        assert iou > 0.9, (k, iou)
    flipped = one(HEART, orientation=20)  # ~185 degrees: the heart upside down
    assert (upright & flipped).sum() / (upright | flipped).sum() < 0.75
    assert centroid(flipped)[1] > centroid(upright)[1] + 0.5  # lobes now below: mass moves down


def test_orientation_zero_and_two_pi_agree_and_nothing_leaves_the_frame():
    assert (one(HEART, orientation=0) != one(HEART, orientation=39)).sum() <= 2
    codes = np.array([[s, 5, o, x, y] for s in range(3) for o in range(40)
                      for x in (0, 31) for y in (0, 31)])
    for size in (64, 32):
        images = render(codes, size)
        edge = images[:, 0].sum() + images[:, -1].sum() + images[:, :, 0].sum() + images[:, :, -1].sum()
        assert edge == 0
        assert images.sum(axis=(1, 2)).min() > 0


def test_factors_can_be_read_back_from_the_images():
    ds = load("shapes", n=300, seed=3)
    images, factors = ds.train.numpy()[:, 0], ds.train_factors.numpy()
    step = 32 / 31
    for image, (shape, scale, _, x, y) in zip(images, factors):
        cx, cy = centroid(image)
        assert abs((cx - 16) / step - x) <= 1.0  # the heart's centroid sits ~0.5 px off centre
        assert abs((cy - 16) / step - y) <= 1.0
    area = images.sum(axis=(1, 2))
    for shape in range(3):
        pick = factors[:, 0] == shape
        # area grows like scale^2: correlation of area with scale^2 within a shape ~ 1
        scale_sq = (0.5 + 0.1 * factors[pick, 1]) ** 2
        assert np.corrcoef(area[pick], scale_sq)[0, 1] > 0.99


def test_dataset_images_equal_rendering_their_factors():
    ds = load("shapes", n=200, size=32, seed=1)
    assert ds.event_shape == (1, 32, 32) and ds.train.dtype == torch.float32
    assert torch.equal(ds.images_for_factors(ds.train_factors), ds.train)
    assert torch.equal(ds.images_for_factors(ds.test_factors), ds.test)
    assert ds.binary and not ds.dynamic_binarize
    assert ds.factor_names == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert ds.factor_sizes == [3, 6, 40, 32, 32]


def test_subset_is_distinct_split_and_rebuilt_from_spec():
    ds = load("shapes", n=500, test_fraction=0.2, seed=7)
    assert (len(ds.train), len(ds.test)) == (400, 100)
    train_keys = set(grid_index(ds.train_factors.numpy(), FACTOR_SIZES).tolist())
    test_keys = set(grid_index(ds.test_factors.numpy(), FACTOR_SIZES).tolist())
    assert len(train_keys) == 400 and not train_keys & test_keys
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.train, ds.train) and torch.equal(again.test_factors, ds.test_factors)
    other = load("shapes", n=500, test_fraction=0.2, seed=8)
    assert not torch.equal(other.train_factors, ds.train_factors)


def test_fixed_factor_sampler_holds_k_and_varies_the_rest():
    ds = load("shapes", n=20, size=32)
    rng = np.random.default_rng(0)
    for k, size in enumerate(FACTOR_SIZES):
        codes = ds.sample_factors(400, rng, fixed={k: size - 1}).numpy()
        assert codes.shape == (400, 5) and codes.dtype == np.int64
        assert (codes[:, k] == size - 1).all()
        for j in range(5):
            if j != k:
                assert len(np.unique(codes[:, j])) == FACTOR_SIZES[j]
    free = ds.sample_factors(3000, rng).numpy()
    assert np.bincount(free[:, 0], minlength=3) / 3000 == pytest.approx([1 / 3] * 3, abs=0.04)
    fixed = ds.sample_factors(64, rng, fixed={0: ELLIPSE, 3: 7})
    images = ds.images_for_factors(fixed).numpy()[:, 0]
    xs = [centroid(im)[0] for im in images]
    assert np.ptp(xs) < 1.0 and np.mean(xs) == pytest.approx(32 * (0.25 + 0.5 * 7 / 31), abs=0.5)
    with pytest.raises(PplVaeError, match="cannot fix factor"):
        ds.sample_factors(4, rng, fixed={5: 0})


def test_bad_shapes_options_and_factors():
    with pytest.raises(PplVaeError, match="size must be 64 or 32"):
        load("shapes", n=10, size=48)
    with pytest.raises(PplVaeError, match="larger than the 737280"):
        load("shapes", n=737_281)
    with pytest.raises(PplVaeError, match="test_fraction"):
        load("shapes", n=10, test_fraction=1.0)
    with pytest.raises(PplVaeError, match="empty train or test"):
        load("shapes", n=3, test_fraction=0.1)
    ds = load("shapes", n=10, size=32)
    with pytest.raises(PplVaeError, match="shape"):
        ds.images_for_factors(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(PplVaeError, match="out of range"):
        ds.images_for_factors(torch.tensor([[3, 0, 0, 0, 0]]))
    with pytest.raises(PplVaeError, match="integer"):
        ds.images_for_factors(torch.zeros(1, 5))


# --- vary: only some factors vary ---------------------------------------------------------

def test_vary_keeps_the_other_factors_fixed_and_covers_the_varying_grid():
    ds = load("shapes", size=64, vary="pos_x,scale")  # default n: the whole 6 x 32 grid
    assert ds.factor_names == ["scale", "pos_x"] and ds.factor_sizes == [6, 32]
    codes = torch.cat([ds.train_factors, ds.test_factors]).numpy()
    assert len(codes) == 192 and len({tuple(c) for c in codes.tolist()}) == 192
    images = torch.cat([ds.train, ds.test]).numpy()[:, 0]
    assert torch.equal(ds.images_for_factors(ds.train_factors), ds.train)
    step = 32 / 31
    for image, (scale, x) in zip(images, codes):
        rows, cols = np.nonzero(image)
        box = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert len(rows) == box  # a filled axis-aligned rectangle: square, orientation 0
        assert abs(np.ptp(rows) - np.ptp(cols)) <= 1  # a square, not a 2:1 ellipse
        cx, cy = centroid(image)
        assert abs((cx - 16) / step - x) <= 0.5  # pos_x varies with its code
        assert abs((cy - 16) / step - 16) <= 0.5  # pos_y fixed at class 16
        side = 0.2 * 64 * (0.5 + 0.1 * scale) * np.sqrt(2)  # scale varies with its code
        assert abs(np.ptp(cols) + 1 - side) <= 1.5
    area = images.sum(axis=(1, 2))
    by_scale = [area[codes[:, 0] == scale].mean() for scale in range(6)]
    assert np.all(np.diff(by_scale) > 0)


def test_vary_spec_round_trips_and_names_in_any_order_or_form():
    ds = load("shapes", size=32, vary=["pos_y", "pos_x", "shape"], n=300, seed=2)
    assert ds.spec["vary"] == "shape,pos_x,pos_y" and ds.factor_sizes == [3, 32, 32]
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.train, ds.train) and torch.equal(again.test_factors, ds.test_factors)
    same = load("shapes", size=32, vary=" shape, pos_y,pos_x", n=300, seed=2)
    assert torch.equal(same.train, ds.train)
    assert "vary" not in load("shapes", size=32, n=20).spec  # old run folders keep their spec
    sampled = ds.sample_factors(500, np.random.default_rng(0)).numpy()
    assert sampled.shape == (500, 3)
    assert [len(np.unique(sampled[:, j])) for j in range(3)] == [3, 32, 32]


def test_vary_errors_and_cli_flag():
    with pytest.raises(PplVaeError, match="vary must name shapes factors"):
        load("shapes", vary="pos_x,colour")
    with pytest.raises(PplVaeError, match="vary must name shapes factors"):
        load("shapes", vary=",")
    with pytest.raises(PplVaeError, match="larger than the 1024"):
        load("shapes", vary="pos_x,pos_y", n=1025)
    from ppl_vae.cli.parser import build_parser

    args = build_parser().parse_args(["train", "--out", "r", "--vary", "pos_x,pos_y"])
    assert args.vary == "pos_x,pos_y"
    assert len(load("shapes", size=32, vary=args.vary).train) == 922  # 90 % of 1,024
