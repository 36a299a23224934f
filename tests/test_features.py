import torch

from svc.features import repeat_expand


def reference_left(content: torch.Tensor, target_len: int) -> torch.Tensor:
    """The loop so-vits-svc 4.1 runs (utils.repeat_expand_2d_left), restated for comparison."""
    src_len = content.shape[-1]
    target = torch.zeros([content.shape[0], target_len])
    temp = torch.arange(src_len + 1) * target_len / src_len
    pos = 0
    for i in range(target_len):
        if not i < temp[pos + 1]:
            pos += 1
        target[:, i] = content[:, pos]
    return target


def test_left_matches_reference_loop_for_many_length_pairs():
    for src_len in (1, 2, 3, 7, 50, 499):
        content = torch.arange(src_len, dtype=torch.float32)[None].repeat(3, 1)
        for target_len in (1, 2, 5, 86, 255, 861):
            if target_len < src_len and src_len > 50:
                continue
            got = repeat_expand(content, target_len, "left")
            assert torch.equal(got, reference_left(content, target_len)), (src_len, target_len)


def test_left_shrinking_lags_like_the_reference():
    content = torch.arange(10, dtype=torch.float32)[None]
    assert torch.equal(repeat_expand(content, 4, "left"), reference_left(content, 4))


def test_nearest_uses_interpolate():
    content = torch.randn(4, 50)
    got = repeat_expand(content, 86, "nearest")
    assert got.shape == (4, 86)
    assert torch.equal(got, torch.nn.functional.interpolate(content[None], size=86, mode="nearest")[0])
