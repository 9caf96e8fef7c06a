"""The UNet of SECTIONS.md: shapes at every block, and its parameter count at D = 128."""

import pytest
import torch

from generator.models.unet import UNet, UNetConfig, count_params


def conv(c_in, c_out, k):  # Conv2d or ConvTranspose2d: weights and bias
    return c_in * c_out * k * k + c_out


def bn(c):
    return 2 * c


def expected_unconditional(D, c=1):
    """The count by hand from the layer list of SECTIONS.md, independent of the code."""
    conv_block = lambda i, o: conv(i, o, 3) + bn(o) + conv(o, o, 3) + bn(o)  # noqa: E731
    down_block = lambda i, o: conv(i, o, 3) + bn(o) + conv_block(o, o)  # noqa: E731
    up_block = lambda i, o: conv(i, o, 4) + bn(o) + conv_block(o, o)  # noqa: E731
    return (
        conv_block(c, D)
        + down_block(D, D)
        + down_block(D, 2 * D)
        + conv(2 * D, 2 * D, 7)
        + bn(2 * D)  # unflatten
        + up_block(4 * D, D)
        + up_block(2 * D, D)
        + conv_block(2 * D, D)
        + conv(D, c, 3)
    )


def fc_block(f_in, f_out):
    return f_in * f_out + f_out + f_out * f_out + f_out


def test_parameter_count_at_d128():
    model = UNet(UNetConfig(hidden=128))
    assert count_params(model) == expected_unconditional(128)
    assert count_params(model) == 7_891_073  # the same number, written out for readers


@pytest.mark.parametrize("time_conditioned, num_classes", [(True, 0), (True, 10)])
def test_conditioned_counts_add_the_fc_blocks(time_conditioned, num_classes):
    D = 16
    model = UNet(UNetConfig(hidden=D, time_conditioned=time_conditioned, num_classes=num_classes))
    extra = fc_block(1, 2 * D) + fc_block(1, D)
    if num_classes:
        extra += fc_block(num_classes, 2 * D) + fc_block(num_classes, D)
    assert count_params(model) == expected_unconditional(D) + extra


def test_shapes_through_every_block():
    D = 128
    model = UNet(UNetConfig(hidden=D)).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        x0 = model.conv_in(x)
        x1 = model.down1(x0)
        x2 = model.down2(x1)
        flat = model.flatten(x2)
        h = model.unflatten(flat)
        u1 = model.up1(torch.cat([h, x2], 1))
        u2 = model.up2(torch.cat([u1, x1], 1))
        out = model.head(model.conv_out(torch.cat([u2, x0], 1)))
    assert x0.shape == (2, D, 28, 28)
    assert x1.shape == (2, D, 14, 14)
    assert x2.shape == (2, 2 * D, 7, 7)
    assert flat.shape == (2, 2 * D, 1, 1)
    assert h.shape == (2, 2 * D, 7, 7)
    assert u1.shape == (2, D, 14, 14)
    assert u2.shape == (2, D, 28, 28)
    assert out.shape == (2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), out)


def test_conditioning_is_checked_and_no_class_is_the_zero_vector():
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=8, time_conditioned=True, num_classes=10)).eval()
    x, t = torch.randn(3, 1, 28, 28), torch.rand(3)
    with torch.no_grad():
        assert torch.equal(model(x, t), model(x, t, torch.zeros(3, 10)))
        one_hot = torch.nn.functional.one_hot(torch.tensor([1, 2, 3]), 10).float()
        # an untrained UNet in eval mode passes the class on only faintly (about 1e-6 here), but it
        # does
        assert (model(x, t) - model(x, t, one_hot)).abs().max() > 1e-7
    with pytest.raises(ValueError):
        model(x)  # t is required
    with pytest.raises(ValueError):
        UNet(UNetConfig(hidden=8))(x, t)  # an unconditional UNet takes no t
