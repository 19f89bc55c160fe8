"""network.py and layers/: registry, shape inference on specs, errors located as data, config
round-trip, loading parameters, summary."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import CheckpointError, ConfigError, ShapeError
from cnncli.layers import LAYERS, register_layer
from cnncli.layers.activations import ReLU
from cnncli.network import (
    build_model,
    execution_order,
    format_summary,
    infer_shapes,
    pack_parameters,
)
from cnncli.optim import build_optimizer, flat_span

LENET = [
    {"type": "conv", "filters": 6, "kernel": 5, "padding": "same"},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv", "filters": 16, "kernel": 5},
    {"type": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 120},
    {"type": "relu"},
    {"type": "dense", "units": 84},
    {"type": "relu"},
    {"type": "dense", "units": 10},
]


def test_lenet_shapes_and_parameter_count() -> None:
    net = build_model((1, 28, 28), LENET)
    shapes = [layer.output_shape for layer in net.layers]
    assert shapes == infer_shapes((1, 28, 28), LENET)  # built and inferred from specs agree
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14)
    assert shapes[3] == (16, 10, 10) and shapes[5] == (16, 5, 5) and shapes[6] == (400,)
    # 6*25+6 + 16*6*25+16 + 400*120+120 + 120*84+84 + 84*10+10
    assert net.param_count() == 156 + 2416 + 48120 + 10164 + 850 == 61706
    table = format_summary((1, 28, 28), LENET)
    assert "conv 6@5x5 s1 same" in table and "(16, 5, 5)" in table
    assert table.splitlines()[-1] == "total parameters: 61,706"


def test_forward_backward_shapes_and_float32(rng: np.random.Generator) -> None:
    net = build_model((1, 28, 28), LENET, rng=rng)
    x = rng.standard_normal((1, 28, 28, 5)).astype(np.float32)
    out = net.forward(x)
    assert out.shape == (10, 5) and out.dtype == np.float32
    dx = net.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    grads = net.named_gradients()
    params = net.named_parameters()
    assert list(grads) == list(params)
    assert list(params)[:2] == ["layers.0.weight", "layers.0.bias"]
    assert all(grads[k].shape == params[k].shape for k in params)


@pytest.mark.parametrize("first", [0, 6])  # starting with conv, and with flatten + dense
def test_backward_without_input_grad_fills_the_same_parameter_gradients(
    rng: np.random.Generator, first: int
) -> None:
    net = build_model((1, 28, 28) if first == 0 else (16, 5, 5), LENET[first:], rng=rng)
    x = rng.standard_normal((*net.input_shape, 3)).astype(np.float32)
    dout = rng.standard_normal((10, 3)).astype(np.float32)
    net.forward(x)
    assert net.backward(dout) is not None
    full = {k: v.copy() for k, v in net.named_gradients().items()}
    net.forward(x)
    assert net.backward(dout, input_grad=False) is None
    for name, g in net.named_gradients().items():
        np.testing.assert_array_equal(g, full[name])


def test_same_seed_same_weights_and_float64_option() -> None:
    a = build_model((1, 8, 8), LENET[:3], rng=np.random.default_rng(5))
    b = build_model((1, 8, 8), LENET[:3], rng=np.random.default_rng(5), dtype=np.float64)
    assert b.named_parameters()["layers.0.weight"].dtype == np.float64
    np.testing.assert_allclose(a.named_parameters()["layers.0.weight"],
                               b.named_parameters()["layers.0.weight"], rtol=1e-6)


def test_parameters_are_packed_back_to_back_with_their_values_kept() -> None:
    net = build_model((1, 12, 12), LENET, rng=np.random.default_rng(3))
    params = list(net.named_parameters().values())
    span = flat_span(params)
    assert span is not None and span.size == net.param_count() == sum(p.size for p in params)
    # pack_parameters keeps each value: packing the packed layers again changes nothing
    before = [p.copy() for p in params]
    flat = pack_parameters(net.layers)
    after = list(net.named_parameters().values())
    assert flat is not None and all(np.shares_memory(p, flat) for p in after)
    for a, b in zip(after, before, strict=True):
        assert np.array_equal(a, b) and a.shape == b.shape
    # and an optimizer step on them moves every layer's live arrays (the same objects)
    opt = build_optimizer({"type": "sgd", "lr": 1.0}, net.named_parameters())
    assert opt.flat is not None
    opt.step({k: np.ones_like(v) for k, v in net.named_parameters().items()})
    for p, b in zip(net.named_parameters().values(), before, strict=True):
        np.testing.assert_allclose(p, b - 1.0, rtol=1e-6, atol=1e-7)


def test_mixed_dtype_parameters_are_left_unpacked() -> None:
    net = build_model((1, 12, 12), LENET[:1], rng=np.random.default_rng(3))
    layer = net.layers[0]
    layer.params["bias"] = layer.params["bias"].astype(np.float64)
    weight = layer.params["weight"]
    assert pack_parameters(net.layers) is None and layer.params["weight"] is weight


def test_config_round_trips() -> None:
    specs = [*LENET[:6], {"type": "avgpool", "size": [1, 2], "stride": 1},
             {"type": "dropout", "rate": 0.25}, {"type": "flatten"},
             {"type": "dense", "units": 10, "init": "glorot"}, {"type": "leaky_relu", "alpha": 0.2}]
    net = build_model((3, 32, 32), specs)
    assert [layer.type_name for layer in net.layers][6:] == ["avgpool", "dropout", "flatten",
                                                             "dense", "leaky_relu"]
    cfg = net.get_config()
    again = build_model(cfg["input_shape"], cfg["layers"])
    assert again.get_config() == cfg
    assert cfg["layers"][0] == {"type": "conv", "filters": 6, "kernel": [5, 5], "stride": [1, 1],
                                "padding": "same", "init": "he"}  # resolved: a relu follows
    assert cfg["layers"][6] == {"type": "avgpool", "size": [1, 2], "stride": [1, 1]}


def test_default_init_is_he_before_relu_and_glorot_before_sigmoid() -> None:
    rng = np.random.default_rng(0)
    flat = {"type": "flatten"}
    relu_net = build_model((1, 10, 100), [flat, {"type": "dense", "units": 400},
                                            {"type": "dropout"}, {"type": "relu"}], rng=rng)
    sig_net = build_model((1, 10, 100), [flat, {"type": "dense", "units": 400},
                                           {"type": "sigmoid"}], rng=rng)
    w_he = relu_net.layers[1].params["weight"]
    w_gl = sig_net.layers[1].params["weight"]
    assert abs(w_he.std() - np.sqrt(2 / 1000)) < 0.002
    assert abs(w_gl.std() - np.sqrt(6 / 1400) / np.sqrt(3)) < 0.002  # uniform(-l, l) std
    assert np.abs(w_gl).max() <= np.sqrt(6 / 1400)


def test_pytorch_init_draws_weights_and_biases_within_one_over_root_fan_in() -> None:
    net = build_model((3, 8, 8), [{"type": "conv", "filters": 50, "kernel": 3, "init": "pytorch"},
                                  {"type": "flatten"},
                                  {"type": "dense", "units": 300, "init": "pytorch"}],
                      rng=np.random.default_rng(0))
    for layer, fan_in in ((net.layers[0], 3 * 3 * 3), (net.layers[2], 50 * 6 * 6)):
        limit = 1 / np.sqrt(fan_in)  # conv: C*KH*KW; dense: its input width
        for name in ("weight", "bias"):
            p = layer.params[name].astype(np.float64)
            assert np.abs(p).max() <= limit and np.abs(p).max() > 0.9 * limit, name
            if p.size > 1000:
                assert abs(p.std() - limit / np.sqrt(3)) < 0.05 * limit  # uniform(-l, l) std


def test_unknown_layer_type_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        build_model((1, 28, 28), [{"type": "convv", "filters": 3}])
    msg = str(err.value)
    assert msg.startswith("layers[0].type: unknown layer type 'convv' (known: avgpool, ")
    assert ", ".join(LAYERS.names()) in msg
    assert err.value.loc == ("layers", 0, "type")


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"type": "conv", "filters": 3, "kernel": 0}],
         "layers[0] (conv): kernel: must be a positive integer or a [height, width] pair of "
         "them, received 0"),
        ([{"type": "conv", "filters": 3, "kernel": [3, 0]}],
         "layers[0] (conv): kernel: must be a positive integer or a [height, width] pair of "
         "them, received [3, 0]"),
        ([{"type": "conv", "filters": -3, "kernel": 3}],
         "layers[0] (conv): filters: must be >= 1, received -3"),
        ([{"type": "conv", "filters": 3, "kernel": 3, "padding": "full"}],
         "layers[0] (conv): padding: must be 'valid', 'same', an integer >= 0 or a [height, "
         "width] pair of them, received 'full'"),
        ([{"type": "relu"}, {"type": "dropout", "rate": 1.5}],
         "layers[1] (dropout): rate: must be < 1, received 1.5"),
        ([{"type": "conv", "filters": 3, "kernl": 3}],
         "layers[0] (conv): kernel: is required (and 1 more)"),
        ([{"type": "conv", "filters": 3, "kernel": 3, "kernl": 3}],
         "layers[0] (conv): kernl: unknown key (known: type, filters, kernel, stride, padding, "
         "init)"),
        ([{"type": "dense", "units": 3, "init": "xavier"}],
         "layers[0] (dense): init: must be 'glorot', 'he' or 'pytorch', received 'xavier'"),
        ([{"type": "dense"}], "layers[0] (dense): units: is required"),
        ([{"type": "conv", "filters": "six", "kernel": 5}],
         "layers[0] (conv): filters: must be an integer, received 'six'"),
        ([{"type": "conv", "filters": 6.5, "kernel": 5}],
         "layers[0] (conv): filters: must be an integer, received 6.5"),
        ([{"type": "conv", "filters": True, "kernel": 5}],
         "layers[0] (conv): filters: must be an integer, received true"),
        (["relu"], "layers[0]: must be a mapping, received 'relu'"),
        ([{"units": 3}], "layers[0].type: is required (one of avgpool, batchnorm, conv, dense, "
                         "dropout, flatten, leaky_relu, maxpool, relu, sigmoid, stochpool, "
                         "tanh)"),
        ([{"type": "leaky_relu", "alpha": float("nan")}],
         "layers[0] (leaky_relu): alpha: must be a finite number, received NaN"),
        ([{"type": "dropout", "rate": float("nan")}],
         "layers[0] (dropout): rate: must be a finite number, received NaN"),
        ([{"type": "dense", "units": 2**63 - 1}],
         "layers[0] (dense): units: must be <= 2.14748e+09, received 9223372036854775807"),
    ],
)
def test_bad_parameters_name_layer_field_and_value(specs: list, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_model((1, 8, 8), specs)
    assert str(err.value) == message


def test_a_whole_number_float_is_an_integer_as_in_json_schema() -> None:
    net = build_model((1, 8, 8), [{"type": "conv", "filters": 6.0, "kernel": 3}])
    assert net.layers[0].get_config()["filters"] == 6


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"type": "maxpool", "size": 2}, {"type": "conv", "filters": 2, "kernel": 5}],
         "layers[1] (conv): kernel 5x5 is bigger than its padded input 4x4 "
         "(input shape (1, 4, 4))"),
        ([{"type": "maxpool", "size": 2}, {"type": "maxpool", "size": 2},
          {"type": "maxpool", "size": 2}, {"type": "maxpool", "size": 2}],
         "layers[3] (maxpool): window 2x2 is bigger than its input 1x1, which would pool to "
         "zero size (input shape (1, 1, 1))"),
        ([{"type": "dense", "units": 10}],
         "layers[0] (dense): needs a flat input (D,), received shape (1, 8, 8); "
         "add {type: flatten} before it"),
        ([{"type": "flatten"}, {"type": "conv", "filters": 2, "kernel": 1}],
         "layers[1] (conv): needs an image input (C, H, W), received shape (64,)"),
    ],
)
def test_shape_misfits_name_layer_and_shapes(specs: list, message: str) -> None:
    with pytest.raises(ShapeError) as err:
        infer_shapes((1, 8, 8), specs)
    assert str(err.value) == message
    assert err.value.loc[0] == "layers" and err.value.kind == specs[err.value.loc[1]]["type"]


def test_a_network_too_big_is_a_config_error_before_any_weight_exists() -> None:
    with pytest.raises(ConfigError, match=r"layers\[1\] \(dense\): the network grows to "):
        infer_shapes((1, 8, 8), [{"type": "flatten"}, {"type": "dense", "units": 2**31 - 1}])


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_layer(type("Again", (ReLU,), {}))
    assert LAYERS.get("relu") is ReLU


def test_load_parameters_copies_checked_arrays_and_refuses_misfits() -> None:
    net = build_model((1, 8, 8), LENET[:3] + [{"type": "flatten"}, {"type": "dense", "units": 3}])
    other = build_model((1, 8, 8), LENET[:3] + [{"type": "flatten"}, {"type": "dense", "units": 3}],
                        rng=np.random.default_rng(99))
    net.load_parameters(other.state())
    for name, arr in net.state().items():
        np.testing.assert_array_equal(arr, other.state()[name])
        assert arr is not other.state()[name]  # copied in, not shared
    bad = dict(other.state())
    bad["layers.4.weight"] = bad["layers.4.weight"][:2]
    with pytest.raises(CheckpointError, match=r"layers.4.weight has shape \(2, 96\)"):
        net.load_parameters(bad)
    del bad["layers.4.weight"]
    with pytest.raises(CheckpointError, match="missing 'layers.4.weight'"):
        net.load_parameters(bad)
    nan = {k: v.copy() for k, v in other.state().items()}
    nan["layers.0.bias"][0] = np.nan
    with pytest.raises(CheckpointError, match="NaN"):
        net.load_parameters(nan)


@pytest.mark.parametrize(("h", "k", "s", "expected"), [(28, 5, 1, 28), (7, 3, 2, 4), (8, 4, 2, 4)])
def test_same_padding_gives_ceil_of_size_over_stride(h: int, k: int, s: int, expected: int) -> None:
    net = build_model((1, h, h), [{"type": "conv", "filters": 1, "kernel": k, "stride": s,
                                      "padding": "same"}])
    assert net.output_shape == (1, expected, expected)


@pytest.mark.parametrize(("before", "ok"), [
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "relu"}], True),
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "sigmoid"},
      {"type": "dropout", "rate": 0.2}], True),
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "relu"},
      {"type": "maxpool", "size": 1}], True),
    ([{"type": "conv", "filters": 2, "kernel": 3}], False),
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "tanh"}], False),
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "leaky_relu"}], False),
    ([{"type": "conv", "filters": 2, "kernel": 3}, {"type": "relu"}, {"type": "batchnorm"}],
     False),
    ([], False),
])
def test_stochpool_needs_non_negative_inputs_checked_when_the_network_is_built(before, ok):
    specs = [*before, {"type": "stochpool", "size": 2}]
    if ok:
        assert infer_shapes((1, 8, 8), specs)[-1][0] in (1, 2)
    else:
        with pytest.raises(ShapeError, match=r"stochpool\): needs non-negative inputs"):
            infer_shapes((1, 8, 8), specs)


def test_batchnorm_buffers_are_saved_but_not_trained(rng: np.random.Generator) -> None:
    from cnncli.optim import build_optimizer

    net = build_model((2, 6, 6), [{"type": "conv", "filters": 3, "kernel": 3},
                                  {"type": "batchnorm"}, {"type": "relu"}, {"type": "flatten"},
                                  {"type": "dense", "units": 4}], rng=rng)
    assert set(net.named_buffers()) == {"layers.1.running_mean", "layers.1.running_var"}
    assert set(net.state()) == set(net.named_parameters()) | set(net.named_buffers())
    opt = build_optimizer({"type": "adam", "weight_decay": 0.1}, net.named_parameters())
    assert not any("running" in k for k in opt.state)
    x = rng.standard_normal((2, 6, 6, 8)).astype(np.float32) + 3.0
    net.forward(x, training=True)  # a training pass moves the running statistics...
    mean = net.named_buffers()["layers.1.running_mean"].copy()
    assert np.all(mean != 0)
    net.backward(np.ones((4, 8), np.float32))
    opt.step(net.named_gradients())  # ...the optimizer never does
    np.testing.assert_array_equal(net.named_buffers()["layers.1.running_mean"], mean)
    net.forward(x, training=False)  # nor does evaluation
    np.testing.assert_array_equal(net.named_buffers()["layers.1.running_mean"], mean)


def test_a_relu_before_a_maxpool_runs_after_it_with_the_same_output(
        rng: np.random.Generator) -> None:
    net = build_model((1, 28, 28), LENET, rng=rng)
    assert execution_order(net.layers) == [0, 2, 1, 3, 5, 4, 6, 7, 8, 9, 10, 11]
    relu_first = build_model((1, 28, 28), [{"type": "relu"}, {"type": "maxpool", "size": 2},
                                           {"type": "maxpool", "size": 2}, {"type": "relu"}])
    assert execution_order(relu_first.layers) == [1, 0, 2, 3]  # maxpool-relu stays as it is
    x = rng.standard_normal((1, 28, 28, 5)).astype(np.float32)
    in_config_order = net.activations(x)[-1]  # activations() runs layer by layer, as written
    np.testing.assert_array_equal(net.forward(x), in_config_order)
    np.testing.assert_array_equal(net.forward(x, training=True, rng=rng), in_config_order)
    # a backward after activations() follows the order activations() ran in (config order)
    net.forward(x)
    net.activations(x)
    dx_after_pictures = net.backward(np.ones((10, 5), dtype=np.float32))
    net.forward(x)
    np.testing.assert_allclose(net.backward(np.ones((10, 5), dtype=np.float32)),
                               dx_after_pictures, rtol=1e-5, atol=1e-7)


def test_relu_maxpool_backward_by_hand_including_a_tie_at_zero() -> None:
    """One 2x2 window per channel, worked by hand: the gradient reaches the largest input when
    it is >= 0 (relu'(0) = 1), and nothing when every input is negative."""
    net = build_model((3, 2, 2), [{"type": "relu"}, {"type": "maxpool", "size": 2}],
                      dtype=np.float64)
    x = np.array([[[-1.0, 2.0], [3.0, 0.5]],     # max 3.0 at tap 2
                  [[-1.0, 0.0], [-2.0, -3.0]],   # max exactly 0.0 at tap 1: passes
                  [[-1.0, -0.5], [-2.0, -3.0]]])[..., None]  # all negative: no gradient
    out = net.forward(x, training=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, 0, 0, 0], [3.0, 0.0, 0.0])
    dx = net.backward(np.array([10.0, 20.0, 30.0]).reshape(3, 1, 1, 1))
    expected = np.zeros((3, 2, 2))
    expected[0, 1, 0] = 10.0
    expected[1, 0, 1] = 20.0
    np.testing.assert_array_equal(dx[..., 0], expected)
