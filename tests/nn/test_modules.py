"""graphc.nn.Module and the layers: registration, state_dict, repr, init statistics, parity with torch."""
import copy
import math

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.autograd import gradcheck
from graphc.errors import DataError, GraphcError

from .helpers import CNN, MLP, arr, copy_to_torch, leaf, rand, torch_models


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("steps", graphc.zeros(1))
        self.register_buffer("scratch", graphc.zeros(2), persistent=False)
        self.scale = nn.Parameter(graphc.ones(1))
        self.note = "plain attribute"

    def forward(self, x):
        return self.fc(x) * self.scale


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))


# --- registration -------------------------------------------------------------------------------

def test_registration_and_iteration_order():
    m = Outer()
    assert [n for n, _ in m.named_parameters()] == ["block.scale", "block.fc.weight", "block.fc.bias",
                                                    "head.1.weight", "head.1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["block.steps", "block.scratch"]
    assert [n for n, _ in m.named_children()] == ["block", "head"]
    assert [n for n, _ in m.named_modules()] == ["", "block", "block.fc", "head", "head.0", "head.1"]
    assert len(list(m.parameters())) == 5 and len(list(m.parameters(recurse=False))) == 0
    assert len(list(m.modules())) == 6 and len(list(m.children())) == 2
    assert m.block.note == "plain attribute" and "note" not in m.block._parameters
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert m.get_submodule("head.1") is m.head[1]
    assert m.get_parameter("block.fc.bias") is m.block.fc.bias


def test_shared_parameters_are_listed_once():
    m = nn.Module()
    m.a = nn.Linear(2, 2)
    m.b = m.a
    assert len(list(m.parameters())) == 2
    assert list(m.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_setattr_rules():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign 'graphc.Tensor' as parameter 'scale'"):
        m.scale = graphc.ones(1)
    m.scale = None
    assert m.scale is None and "block" not in dict(m.named_parameters())
    m.steps = graphc.ones(1)                  # a buffer stays a buffer when reassigned
    assert "steps" in m._buffers
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'steps'"):
        m.steps = 3
    m.fc = nn.Identity()
    assert isinstance(m._modules["fc"], nn.Identity)
    del m.fc
    assert "fc" not in m._modules
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'fc'"):
        m.fc
    with pytest.raises(KeyError, match="attribute 'note' already exists"):
        m.register_buffer("note", graphc.zeros(1))
    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        class Bad(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(graphc.zeros(1))
        Bad()


def test_train_eval_requires_grad_and_apply():
    m = Outer()
    assert m.training and m.head[0].training
    assert m.eval() is m and not m.block.fc.training
    m.train()
    assert m.head[1].training
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Block", "ReLU", "Linear", "Sequential", "Outer"]


def test_zero_grad():
    m = MLP()
    m(graphc.randn(2, 784)).sum().backward()
    grad = m.fc1.weight.grad
    m.zero_grad(set_to_none=False)
    assert m.fc1.weight.grad is grad and not arr(grad).any()
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0.0,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1.0)
    out = m(graphc.ones(3, 2))
    np.testing.assert_allclose(arr(out), np.broadcast_to(arr(m.bias) + 1, (3, 2)), rtol=1e-6)
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(arr(m(graphc.zeros(1, 2))), arr(m.bias)[None], rtol=1e-6)


def test_missing_forward():
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(1)


def test_parameter():
    t = graphc.zeros(2, 3)
    p = nn.Parameter(t)
    assert np.shares_memory(arr(p), arr(t))         # no copy
    assert p.requires_grad and p.is_leaf and isinstance(p, graphc.Tensor)
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(nn.Parameter(graphc.ones(2))) == "Parameter containing:\ntensor([1., 1.], requires_grad=True)"
    assert type(p * 2.0) is graphc.Tensor
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and not np.shares_memory(arr(q), arr(p))


# --- state_dict ----------------------------------------------------------------------------------

def test_state_dict_shares_memory_and_is_detached():
    m = Block()
    sd = m.state_dict()
    assert list(sd) == ["scale", "steps", "fc.weight", "fc.bias"]   # non-persistent buffer left out
    assert type(sd).__name__ == "OrderedDict"
    assert not sd["fc.weight"].requires_grad
    assert np.shares_memory(arr(sd["fc.weight"]), arr(m.fc.weight))
    assert m.state_dict(keep_vars=True)["fc.weight"] is m.fc.weight


def test_load_state_dict_copies_in_place():
    src, dst = MLP(), MLP()
    storage = {n: arr(p) for n, p in dst.named_parameters()}
    params = dict(dst.named_parameters())
    result = dst.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, p in dst.named_parameters():
        assert p is params[name]
        assert arr(p) is storage[name] or np.shares_memory(arr(p), storage[name])   # same storage
        np.testing.assert_array_equal(arr(p), arr(dict(src.named_parameters())[name]))
    x = graphc.randn(2, 784)
    np.testing.assert_array_equal(arr(src(x)), arr(dst(x)))


def test_load_state_dict_accepts_arrays_and_casts_dtypes():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": np.ones((2, 2)), "bias": graphc.zeros(2, dtype=graphc.float64)})
    assert m.weight.dtype == np.float32 and arr(m.weight).sum() == 4


def test_load_state_dict_missing_and_unexpected_keys():
    m = MLP()
    sd = m.state_dict()
    del sd["fc2.bias"]
    sd["fc3.weight"] = graphc.zeros(1)
    with pytest.raises(DataError) as e:
        m.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith('load_state_dict: Error(s) in loading state_dict for MLP:\n\tMissing key(s) in state_dict: '
                          '"fc2.bias". \n\tUnexpected key(s) in state_dict: "fc3.weight". ')
    assert "help: the checkpoint was saved from a different model; pass strict=False" in msg
    assert isinstance(e.value, RuntimeError)   # what torch raises, so `except RuntimeError` still works
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["fc2.bias"] and result.unexpected_keys == ["fc3.weight"]
    assert repr(result) == "_IncompatibleKeys(missing_keys=['fc2.bias'], unexpected_keys=['fc3.weight'])"


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    m = MLP()
    sd = m.state_dict()
    sd["fc1.weight"] = graphc.zeros(10, 784)
    before = arr(m.fc1.weight).copy()
    for strict in (True, False):
        with pytest.raises(DataError) as e:
            m.load_state_dict(sd, strict=strict)
        assert ("size mismatch for fc1.weight: copying a param with shape graphc.Size([10, 784]) from checkpoint, "
                "the shape in current model is graphc.Size([128, 784]).") in str(e.value)
        assert "different layer sizes" in str(e.value)
    np.testing.assert_array_equal(arr(m.fc1.weight), before)


def test_load_state_dict_hints_at_wrapper_prefix():
    m = nn.Linear(2, 2)
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    with pytest.raises(DataError, match="keys start with 'module.'"):
        m.load_state_dict(sd)


def test_to_and_dtype_conversion_keep_parameter_objects():
    m = Outer()
    params = list(m.parameters())
    assert m.to("cpu") is m and m.cuda() is m and m.cpu() is m
    m.double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert list(m.parameters()) == params and all(a is b for a, b in zip(m.parameters(), params))
    assert m.block.steps.dtype == np.float64
    m.to(graphc.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    m.to("cpu", dtype=graphc.float64)
    assert m.block.fc.weight.dtype == np.float64
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        m.to(graphc.int64)
    m.float()
    out = m.block(graphc.ones(2, 3))
    assert out.dtype == np.float32


# --- repr ---------------------------------------------------------------------------------------

def test_repr():
    assert repr(nn.Linear(784, 128)) == "Linear(in_features=784, out_features=128, bias=True)"
    assert repr(nn.Conv2d(1, 32, 3, 1)) == "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(nn.Conv2d(1, 32, 3, padding="same", bias=False)) == \
        "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=same, bias=False)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(CNN()) == """CNN(
  (conv1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))
  (conv2): Conv2d(32, 64, kernel_size=(3, 3), stride=(1, 1))
  (dropout1): Dropout2d(p=0.25, inplace=False)
  (dropout2): Dropout(p=0.5, inplace=False)
  (fc1): Linear(in_features=9216, out_features=128, bias=True)
  (fc2): Linear(in_features=128, out_features=10, bias=True)
)"""
    assert repr(Outer()) == """Outer(
  (block): Block(
    (fc): Linear(in_features=3, out_features=4, bias=True)
  )
  (head): Sequential(
    (0): ReLU()
    (1): Linear(in_features=4, out_features=2, bias=True)
  )
)"""
    assert repr(nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()])) == \
        "ModuleList(\n  (0-1): 2 x ReLU()\n  (2): Tanh()\n)"


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    pairs = [
        (nn.Sequential(nn.Conv2d(3, 8, (3, 5), stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                       nn.MaxPool2d(3, 2, 1), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(0.1),
                       nn.Linear(8, 4, bias=False), nn.LeakyReLU(0.2), nn.LogSoftmax(dim=1), nn.Identity()),
         tnn.Sequential(tnn.Conv2d(3, 8, (3, 5), stride=2, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(inplace=True),
                        tnn.MaxPool2d(3, 2, 1), tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Dropout(0.1),
                        tnn.Linear(8, 4, bias=False), tnn.LeakyReLU(0.2), tnn.LogSoftmax(dim=1), tnn.Identity())),
        (nn.ModuleDict({"a": nn.Softmax(dim=0), "b": nn.ModuleList([nn.Sigmoid()] * 3 + [nn.Tanh()])}),
         tnn.ModuleDict({"a": tnn.Softmax(dim=0), "b": tnn.ModuleList([tnn.Sigmoid()] * 3 + [tnn.Tanh()])})),
        (nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()),
        (nn.BatchNorm1d(4, momentum=None, affine=False), tnn.BatchNorm1d(4, momentum=None, affine=False)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


# --- containers -----------------------------------------------------------------------------------

def test_sequential():
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1], nn.ReLU)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    x = graphc.randn(5, 4)
    np.testing.assert_allclose(arr(seq(x)), arr(seq[2](seq[1](seq[0](x)))))
    seq.append(nn.Tanh())
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq[1] = nn.Sigmoid()
    assert [type(m).__name__ for m in seq] == ["Linear", "Sigmoid", "Linear", "Tanh"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[1], nn.Linear)
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named.act is named[1]
    with pytest.raises(IndexError):
        seq[7]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    holder = nn.Module()
    holder.layers = layers
    assert len(list(holder.parameters())) == 8 and len(layers) == 4 and layers[-1].out_features == 1
    d = nn.ModuleDict({"enc": nn.Linear(2, 3)})
    d["dec"] = nn.Linear(3, 2)
    assert list(d.keys()) == ["enc", "dec"] and "dec" in d and len(d) == 2
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]


# --- init -------------------------------------------------------------------------------------------

def test_init_statistics():
    graphc.manual_seed(0)
    w = graphc.empty(256, 512)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(512)
    assert arr(w).min() >= -bound and arr(w).max() < bound and arr(w).max() > 0.99 * bound
    assert abs(arr(w).std() - bound / math.sqrt(3)) < 0.01 * bound
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(arr(w).std() - math.sqrt(2 / 512)) < 0.01 * math.sqrt(2 / 512)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(arr(w).std() - math.sqrt(2 / 256)) < 0.01 * math.sqrt(2 / 256)
    nn.init.xavier_uniform_(w, gain=2.0)
    xb = 2.0 * math.sqrt(6 / (256 + 512))
    assert arr(w).min() >= -xb and arr(w).max() < xb and abs(arr(w).std() - xb / math.sqrt(3)) < 0.01 * xb
    nn.init.xavier_normal_(w)
    assert abs(arr(w).std() - math.sqrt(2 / 768)) < 0.02 * math.sqrt(2 / 768)
    nn.init.normal_(w, 3.0, 0.5)
    assert abs(arr(w).mean() - 3.0) < 0.01 and abs(arr(w).std() - 0.5) < 0.01
    nn.init.uniform_(w, -2, 1)
    assert arr(w).min() >= -2 and arr(w).max() < 1 and abs(arr(w).mean() + 0.5) < 0.02
    for fn, value in ((nn.init.zeros_, 0), (nn.init.ones_, 1), (lambda t: nn.init.constant_(t, 0.25), 0.25)):
        assert fn(w) is w and np.all(arr(w) == value)
    conv = graphc.empty(32, 16, 3, 3)
    assert nn.init._calculate_fan_in_and_fan_out(conv) == (144, 288)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.kaiming_uniform_(graphc.empty(5))


def test_init_works_on_parameters_that_require_grad():
    p = nn.Parameter(graphc.zeros(4, 4))
    nn.init.kaiming_uniform_(p)
    assert p.requires_grad and arr(p).any()


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for args in (("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                 ("leaky_relu", 0.2), ("selu",)):
        assert nn.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))


def test_default_init_is_seeded_and_in_torchs_ranges():
    graphc.manual_seed(7)
    a = CNN()
    graphc.manual_seed(7)
    b = CNN()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(arr(p), arr(q))
    for layer, fan_in in ((a.conv1, 9), (a.conv2, 288), (a.fc1, 9216), (a.fc2, 128)):
        bound = 1 / math.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            assert np.abs(arr(p)).max() <= bound
    assert abs(arr(a.fc1.weight).std() - 1 / math.sqrt(3 * 9216)) < 0.02 / math.sqrt(3 * 9216)


# --- layers ---------------------------------------------------------------------------------------

def test_layer_gradients_vs_finite_differences():
    graphc.manual_seed(0)
    for layer, shape in ((nn.Linear(3, 2), (4, 3)), (nn.Conv2d(2, 3, 3, stride=2, padding=1), (1, 2, 5, 5)),
                         (nn.BatchNorm2d(2), (3, 2, 2, 2)), (nn.BatchNorm1d(3), (4, 3))):
        layer.double()
        names = [n for n, _ in layer.named_parameters()]

        def fn(x, *ps, layer=layer, names=names):
            # run the layer with the gradcheck's tensors standing in for its parameters
            saved = dict(layer._parameters)
            layer._parameters.update(zip(names, ps))
            try:
                return layer(x)
            finally:
                layer._parameters.update(saved)

        inputs = (leaf(rand(*shape, seed=1), np.float64),) + tuple(leaf(arr(p), np.float64) for p in layer.parameters())
        assert gradcheck(fn, inputs), type(layer).__name__


def test_dropout_modules_follow_training_mode():
    graphc.manual_seed(0)
    x = graphc.ones(8, 4, 3, 3)
    for cls in (nn.Dropout, nn.Dropout2d):
        layer = cls(0.5)
        assert not np.array_equal(arr(layer(x)), arr(x))
        layer.eval()
        assert layer(x) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_conv2d_layer_errors():
    with pytest.raises(GraphcError, match="Conv2d: groups=2, dilation=1 is not supported by graphc"):
        nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(GraphcError, match="padding_mode='reflect' is not supported"):
        nn.Conv2d(4, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(4, 4, 3, stride=2, padding="same")


def test_flatten_unflatten_identity():
    x = graphc.zeros(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(54, unused="x")(x) is x


def test_batchnorm_running_stats_and_eval():
    bn = nn.BatchNorm1d(3)
    x = rand(16, 3, seed=2) * 2 + 1
    out = arr(bn(graphc.tensor(x)))
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(arr(bn.running_mean), 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(arr(bn.running_var), 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    np.testing.assert_allclose(arr(bn(graphc.tensor(x))),
                               (x - arr(bn.running_mean)) / np.sqrt(arr(bn.running_var) + 1e-5), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


# --- torch parity ---------------------------------------------------------------------------------

def _parity(torch, model, tmodel, x, atol=1e-5):
    copy_to_torch(model, tmodel, torch)
    out = model(graphc.tensor(x))
    tout = tmodel(torch.tensor(x))
    np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-5, atol=atol)
    seed = rand(*tout.shape, seed=123)
    (out * graphc.tensor(seed)).sum().backward()
    (tout * torch.tensor(seed)).sum().backward()
    tgrads = dict(tmodel.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(arr(p.grad), tgrads[name].grad.numpy(), rtol=1e-4, atol=atol, err_msg=name)


def test_torch_parity_seed_mlp():
    torch = pytest.importorskip("torch")
    TMLP, _ = torch_models(torch)
    _parity(torch, MLP(), TMLP(), rand(8, 1, 28, 28, seed=1))


def test_torch_parity_seed_cnn_eval_dropout():
    torch = pytest.importorskip("torch")
    _, TCNN = torch_models(torch)
    _parity(torch, CNN().eval(), TCNN().eval(), rand(2, 1, 28, 28, seed=2))


@pytest.mark.parametrize("case", ["linear", "conv", "conv_pad", "bn2d_train", "bn1d_eval", "seq"])
def test_torch_parity_layers(case):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    build = {
        "linear": (lambda m: m.Linear(5, 3), (4, 5)),
        "conv": (lambda m: m.Conv2d(3, 4, (3, 2), stride=(2, 1)), (2, 3, 7, 6)),
        "conv_pad": (lambda m: m.Conv2d(3, 4, 3, padding=1, bias=False), (2, 3, 5, 5)),
        "bn2d_train": (lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
        "bn1d_eval": (lambda m: m.BatchNorm1d(3), (6, 3)),
        "seq": (lambda m: m.Sequential(m.Conv2d(2, 4, 3), m.ReLU(), m.MaxPool2d(2), m.Flatten(),
                                       m.Linear(16, 5), m.Tanh(), m.Linear(5, 2), m.Softmax(dim=1)), (3, 2, 6, 6)),
    }[case]
    model, tmodel = build[0](nn), build[0](tnn)
    if case == "bn1d_eval":
        model.running_mean.copy_(graphc.tensor([0.5, -1., 2.]))
        model.running_var.copy_(graphc.tensor([1.5, 0.5, 3.]))
        with graphc.no_grad():
            model.weight.copy_(graphc.tensor([1., 2., 3.]))
        model.eval()
        tmodel.eval()
    _parity(torch, model, tmodel, rand(*build[1], seed=5) * 2 + 0.5)
    for name, b in model.named_buffers():
        np.testing.assert_allclose(arr(b), dict(tmodel.named_buffers())[name].numpy(), rtol=1e-5, atol=1e-6)


def test_torch_parity_batchnorm_momentum_none():
    torch = pytest.importorskip("torch")
    bn, tbn = nn.BatchNorm1d(2, momentum=None), torch.nn.BatchNorm1d(2, momentum=None)
    for seed in range(3):
        x = rand(5, 2, seed=seed) + seed
        bn(graphc.tensor(x))
        tbn(torch.tensor(x))
    np.testing.assert_allclose(arr(bn.running_mean), tbn.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(arr(bn.running_var), tbn.running_var.numpy(), rtol=1e-5)


def test_torch_state_dict_loads_into_graphc():
    torch = pytest.importorskip("torch")
    _, TCNN = torch_models(torch)
    tmodel = TCNN().eval()
    model = CNN().eval()
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = rand(2, 1, 28, 28, seed=3)
    np.testing.assert_allclose(arr(model(graphc.tensor(x))), tmodel(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_functional_layers_with_module_weights():
    lin = nn.Linear(4, 2)
    x = graphc.randn(3, 4)
    np.testing.assert_allclose(arr(lin(x)), arr(F.linear(x, lin.weight, lin.bias)))


def test_call_tells_an_active_tracer_which_modules_ran():
    from graphc import _context

    class Recorder:
        def __init__(self):
            self.modules = []

        def note_module(self, module):
            self.modules.append(module)

    outer = nn.Sequential(nn.Identity(), nn.Identity())
    x = graphc.zeros(1)
    saved, _context.tracer = _context.tracer, Recorder()
    try:
        recorder = _context.tracer
        outer(x)
    finally:
        _context.tracer = saved
    assert recorder.modules == [outer, outer[0], outer[1]]
