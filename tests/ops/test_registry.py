"""The op table is complete: every primitive in OPS has an impl, a shape/dtype rule, a docstring
with an example, a known kind, a VJP (or nondiff=True), signatures that take its attributes, and
at least one case in tests/ops/cases/ that runs it, so a new op without tests fails here.
"""
import inspect

import numpy as np
import pytest

import graphc
from graphc.ops import KINDS, OPS, get_op

from .cases import CASES

AUTODIFF_REQUEST = "grad"     # the autodiff pass's gradient request: no impl, replaced before anything runs
OP_NAMES = sorted(OPS)

# Known gaps in graphc, reported to the lead; strict, so a fix turns them into failures to remove here.
DOC_WITHOUT_EXAMPLE = {}


def known(names, suite_reason):
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=suite_reason[n])) if n in suite_reason
            else n for n in names]


def tensor_params(op):
    """Names of the infer rule's tensor operands (its parameters that are not attributes)."""
    return [p.name for p in inspect.signature(op.infer).parameters.values()
            if p.name not in op.attrs and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]


@pytest.mark.parametrize("name", OP_NAMES)
def test_op_has_impl_infer_and_known_kind(name):
    op = OPS[name]
    assert op.name == name
    assert op.kind in KINDS, f"op {name!r} has kind {op.kind!r}, not one of {KINDS}"
    assert callable(op.infer), f"op {name!r} has no shape/dtype rule"
    if name != AUTODIFF_REQUEST:
        assert callable(op.impl), f"op {name!r} ({op.source_file}) has no impl"


@pytest.mark.parametrize("name", known(OP_NAMES, DOC_WITHOUT_EXAMPLE))
def test_op_docstring_has_an_example(name):
    doc = OPS[name].doc
    assert doc, f"op {name!r} has no docstring"
    assert "->" in doc, f"op {name!r}: the docstring needs an example, input -> output: {doc!r}"


@pytest.mark.parametrize("name", [n for n in OP_NAMES if n != AUTODIFF_REQUEST])
def test_op_has_vjp_or_is_nondiff(name):
    op = OPS[name]
    if not tensor_params(op):      # const, full: made from attributes alone, nothing to differentiate
        return
    assert op.vjp is not None or op.nondiff, \
        f"op {name!r} ({op.source_file}) has no vjp: declare it nondiff=True or add a vjp"
    assert not (op.vjp is not None and op.nondiff), f"op {name!r} is nondiff but declares a vjp"


@pytest.mark.parametrize("name", OP_NAMES)
def test_op_signatures_take_its_attributes(name):
    """infer, impl and vjp are all called with **attrs, so each must accept every declared attribute."""
    op = OPS[name]
    for role in ("infer", "impl", "vjp"):
        fn = getattr(op, role)
        if fn is None:
            continue
        params = inspect.signature(fn).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            continue
        missing = [a for a in op.attrs if a not in params]   # (vjp may take more: `needs`)
        assert not missing, f"op {name!r}: {role} does not take the attribute(s) {missing}"


def test_failed_lookup_explains_itself():
    with pytest.raises(KeyError, match="no op named 'nope'; the op table has: .*matmul"):
        get_op("nope")


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_op_is_exercised_by_a_case(monkeypatch):
    """Run the whole table, forward and backward, recording which primitives it reaches (apply calls an
    op's infer rule first, so a case whose op is broken still counts as covering it)."""
    ran = set()
    for name, op in OPS.items():
        def recording(*args, _infer=op.infer, _name=name, **attrs):
            ran.add(_name)
            return _infer(*args, **attrs)
        monkeypatch.setattr(op, "infer", recording)
    for case in CASES:
        arrays = case.inputs(np.float64)
        slots = set(case.float_inputs()) if case.grad else set()
        try:
            out = case.fn(*[graphc.tensor(a, requires_grad=i in slots) for i, a in enumerate(arrays)])
            if case.grad:
                out.backward(graphc.tensor(np.ones(tuple(out.shape))))
        except Exception:    # a broken case fails in test_forward / test_gradients; here it only counts less
            continue
    # Collectives need a process group; tests/passes/test_collectives.py and tests/distributed run them.
    collectives = {name for name, op in OPS.items() if op.effect}
    missing = sorted(set(OPS) - ran - {AUTODIFF_REQUEST} - collectives)
    assert not missing, f"no case in tests/ops/cases/ runs the op(s) {missing}: add a line to its op family's table"
