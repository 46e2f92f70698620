"""Programs the differential fuzzer found that once failed on numba_cpu, kept as plain named tests.

Each test is the fuzzer's shrunk program, written out: it must compile on numba_cpu and equal eager
(graphc.verify compares every output, grad, parameter and optimizer state, call after call).

    broadcasting matmul under where   -> "no storage planned for %23" (the collapse viewed a value the plan had inlined)
    AdamW(amsgrad) over [1,1] params  -> numba "Calling a closure with *args" (a fused kernel with ~25 arguments)
"""
from __future__ import annotations

import numpy as np

import graphc


def _param(shape, rng):
    return graphc.nn.Parameter(graphc.tensor(rng.standard_normal(shape).astype(np.float32)))


def test_found_broadcasting_matmul_under_where():
    """A [4, 1, 1] input plus a [1, 1] parameter, matmul by a [1, 1] parameter, then where(): the memory
    plan once had no storage for a value the emitter's elementwise collapse viewed
    (BackendError: numba_cpu: no storage planned for %23)."""
    rng = np.random.default_rng(0)
    p0, p1 = _param((1, 1), rng), _param((1, 1), rng)
    d0 = graphc.tensor(rng.standard_normal((4, 1, 1)).astype(np.float32))

    def program(d0):
        v0 = d0 + p0
        v1 = v0 @ p1
        v2 = graphc.where(v1 > v0, v1, v0 * 0.5)
        v3 = v2 * v0
        loss = v3.mean()
        loss = loss + 0.001 * ((p0 * p0).sum() + (p1 * p1).sum())
        loss.backward()
        return loss, v3, p0.grad, p1.grad

    report = graphc.verify(program, d0, backend="numba_cpu", rtol=2e-4, atol=2e-5, steps=2)
    assert report.ok, report


def _three_unit_parameters_under_adamw_amsgrad(seed):
    """Three [1, 1] parameters, AdamW(lr=0.05, amsgrad=True) over them, and a [3, 1] input."""
    rng = np.random.default_rng(seed)
    params = [_param((1, 1), rng) for _ in range(3)]
    opt = graphc.optim.AdamW(params, lr=0.05, amsgrad=True)
    return params, opt, graphc.tensor(rng.standard_normal((3, 1)).astype(np.float32))


def test_found_adamw_amsgrad_over_three_unit_parameters():
    """AdamW(amsgrad=True) over three [1, 1] parameters: numba refused to inline the fused update kernel's
    call of ~25 arguments (UnsupportedError: Calling a closure with *args is unsupported)."""
    (p0, p1, p2), opt, d0 = _three_unit_parameters_under_adamw_amsgrad(seed=1)

    def program(d0):
        opt.zero_grad()
        v0 = d0 * p0
        v1 = graphc.tanh(v0) + p1
        v2 = v1 * p2
        loss = (v2 * v2).mean()
        loss = loss + 0.001 * ((p0 * p0).sum() + (p1 * p1).sum() + (p2 * p2).sum())
        loss.backward()
        opt.step()
        return loss, v2, p0.grad, p1.grad, p2.grad, p0 * 1.0, p1 * 1.0, p2 * 1.0

    report = graphc.verify(program, d0, backend="numba_cpu", rtol=2e-4, atol=2e-5, steps=2)
    assert report.ok, report


def test_found_adamw_amsgrad_reduced_by_hand():
    """The same crash, from the program as first reduced by hand: a matmul in the loss, only the loss
    returned; compiled == eager to 1e-5."""
    (p0, p1, p2), opt, d0 = _three_unit_parameters_under_adamw_amsgrad(seed=2)

    def program(d0):
        opt.zero_grad()
        loss = ((d0 @ p0 + p1) * p2).tanh().mean()
        loss.backward()
        opt.step()
        return loss

    report = graphc.verify(program, d0, backend="numba_cpu", rtol=1e-5, atol=1e-5, steps=2)
    assert report.ok, report
