"""The random moves of JointVAE's code-invariance term, against exact pixel moves."""

import math

import torch

from vaelab.augment import affine, random_affine
from vaelab.parts import BatchShard


def images(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def test_no_move_is_the_identity():
    x = images(3, 2, 6, 5)
    torch.testing.assert_close(affine(x, torch.zeros(3), torch.zeros(3), torch.zeros(3)), x)


def test_whole_pixel_shifts_move_the_pixels_and_fill_with_zeros():
    x = images(2, 1, 6, 7)
    right = torch.zeros_like(x)
    right[..., 1:] = x[..., :-1]
    down = torch.zeros_like(x)
    down[..., 2:, :] = x[..., :-2, :]
    torch.testing.assert_close(affine(x, torch.ones(2), torch.zeros(2), torch.zeros(2)), right)
    torch.testing.assert_close(affine(x, torch.zeros(2), torch.full((2,), 2.0), torch.zeros(2)), down)


def test_quarter_and_half_turns_equal_rot90_also_on_non_square_images():
    square, wide = images(2, 3, 6, 6), images(1, 1, 4, 8)
    turn = affine(square, torch.zeros(2), torch.zeros(2), torch.full((2,), math.pi / 2))
    torch.testing.assert_close(turn, torch.rot90(square, 1, (-2, -1)))  # counter-clockwise as displayed
    half = affine(wide, torch.zeros(1), torch.zeros(1), torch.full((1,), math.pi))
    torch.testing.assert_close(half, torch.rot90(wide, 2, (-2, -1)))


def test_a_turn_then_a_shift_moves_a_pixel_where_expected_on_a_non_square_image():
    """A pixel 2 right of the centre of a 5x9 frame, turned a quarter counter-clockwise, lands 2 above the
    centre; then shifted 1 right and 1 down: (row 2 - 2 + 1, column 4 + 1). Swapping H and W in the matrix,
    or shifting before turning, puts it elsewhere."""
    x = torch.zeros(1, 1, 5, 9)
    x[0, 0, 2, 6] = 1.0
    moved = affine(x, torch.ones(1), torch.ones(1), torch.full((1,), math.pi / 2))
    expected = torch.zeros_like(x)
    expected[0, 0, 1, 5] = 1.0
    torch.testing.assert_close(moved, expected)


def test_random_moves_stay_in_range_differ_per_image_and_shard_like_one_process():
    x = torch.torch.zeros(8, 1, 15, 15)
    x[:, :, 7, 7] = 1.0  # one bright centre pixel: where it lands shows the move
    moved = random_affine(x, shift=3.0, rotation=0.0, generator=torch.Generator().manual_seed(0))
    rows, cols = torch.arange(15.0).view(15, 1), torch.arange(15.0).view(1, 15)
    mass = moved[:, 0].sum((-2, -1))
    torch.testing.assert_close(mass, torch.ones(8))  # bilinear moves inside the frame keep the pixel's mass
    centre_row = (moved[:, 0] * rows).sum((-2, -1)) - 7
    centre_col = (moved[:, 0] * cols).sum((-2, -1)) - 7
    assert centre_row.abs().max() <= 3 and centre_col.abs().max() <= 3
    assert len(set(centre_col.round(decimals=3).tolist())) == 8
    whole = random_affine(x, 2.0, 10.0, torch.Generator().manual_seed(1))
    shards = [random_affine(x[a:b], 2.0, 10.0, BatchShard(torch.Generator().manual_seed(1), 8, a, b)) for a, b in
              [(0, 3), (3, 8)]]  # fmt: skip
    torch.testing.assert_close(torch.cat(shards), whole)
