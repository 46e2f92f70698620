"""torch's device queries answer as on a CPU-only torch, and graphc.backends is still the compiler's package."""
import graphc
import graphc.backends.numba_cpu as numba_cpu


def test_torch_backends_flags_answer_as_a_cpu_only_torch():
    assert graphc.backends.mps.is_available() is False and graphc.backends.mps.is_built() is False
    assert graphc.backends.cudnn.deterministic is False
    graphc.backends.cudnn.deterministic = True     # programs set it; nothing changes on the CPU
    assert graphc.cuda.is_available() is False and graphc.accelerator.current_accelerator() is None


def test_the_compiler_backends_stay_importable_as_submodules():
    assert numba_cpu.NumbaCPUBackend.name == "numba_cpu"
    assert graphc.backends.get_backend("interpreter") is not None
