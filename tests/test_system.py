"""The fast path chosen at run time (:func:`syneg.system.encoding_backend`, :func:`syneg.system.training_precision`)
on machines faked by their probe results: what the CPU lists, what this process can run, the GPU."""

from __future__ import annotations

import pytest

from syneg import system
from syneg.system import InstructionSetStatus

NO_GPU = {"torch": "2", "cuda": False, "devices": []}
GPU = {"torch": "2", "cuda": True, "devices": ["Test GPU"]}


@pytest.fixture
def machine(monkeypatch):
    """``machine(usable, gpu=NO_GPU)``: fake which instruction sets this process can run, and the GPU."""

    def fake(usable: set[str], gpu: dict = NO_GPU) -> None:
        monkeypatch.setattr(system, "usable_instruction_sets", lambda: frozenset(usable))
        monkeypatch.setattr(system, "gpu", lambda: gpu)

    return fake


@pytest.mark.parametrize(
    ("usable", "backend", "precision"),
    [
        ({"avx2", "avx512", "avx512_vnni", "avx_vnni", "avx512_bf16"}, "torch-bf16", "bf16"),  # Zen 4/5, Cooper Lake
        ({"avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx"}, "torch-bf16", "bf16"),  # Sapphire Rapids, AMX granted
        ({"avx2", "avx512", "amx"}, "torch-bf16", "bf16"),  # AMX alone runs bf16 tiles
        ({"avx2", "avx512", "avx512_vnni"}, "onnx-int8", "fp32"),  # Cascade Lake: int8 but no bf16
        ({"avx2", "avx_vnni"}, "onnx-int8", "fp32"),  # Alder Lake: 256-bit VNNI
        ({"avx2", "avx512"}, "torch", "fp32"),  # Skylake-X: neither
        ({"avx2"}, "torch", "fp32"),  # the AVX2-only EPYC: never slower than fp32
        (set(), "torch", "fp32"),
    ],
)
def test_auto_takes_the_fastest_path_the_cpu_runs(machine, usable, backend, precision):
    machine(usable)
    choice = system.encoding_backend("auto")
    assert (choice.backend, choice.device) == (backend, "cpu") and choice.reason.startswith("auto: ")
    assert choice.precision == system.ENCODING_PRECISION[backend]
    training = system.training_precision("auto")
    assert (training.precision, training.device) == (precision, "cpu") and training.reason.startswith("auto: ")


def test_a_listed_instruction_that_faults_or_is_refused_is_not_used(monkeypatch):
    """The CPU lists AVX-512 BF16 and AMX, but the hypervisor faults on the one and the kernel refuses the other's
    tile state: the choice is what runs (VNNI), never what is listed."""
    statuses = (
        InstructionSetStatus("avx2", "AVX2", True, True),
        InstructionSetStatus("avx512", "AVX-512", True, True),
        InstructionSetStatus("avx512_vnni", "AVX-512 VNNI", True, True),
        InstructionSetStatus("avx_vnni", "AVX-VNNI", False, False, "not offered by the CPU"),
        InstructionSetStatus("avx512_bf16", "AVX-512 BF16", True, False, "listed by the CPU, but its instructions fault here"),
        InstructionSetStatus("amx", "AMX", True, False, "listed by the CPU, but the kernel refused the tile state"),
    )
    monkeypatch.setattr(system, "instruction_sets", lambda: statuses)
    monkeypatch.setattr(system, "gpu", lambda: NO_GPU)
    assert system.usable_instruction_sets() == {"avx2", "avx512", "avx512_vnni"}
    assert system.encoding_backend().backend == "onnx-int8"
    assert system.training_precision().precision == "fp32"
    # Nothing could even be tried (usable None): fp32, the path that runs everywhere.
    monkeypatch.setattr(system, "instruction_sets", lambda: tuple(
        InstructionSetStatus(s.key, s.name, True, None, "could not be tried") for s in statuses))
    assert system.encoding_backend().backend == "torch" and system.training_precision().precision == "fp32"


def test_int8_without_onnxruntime_falls_back_to_fp32(machine, monkeypatch):
    machine({"avx2", "avx512", "avx512_vnni"})
    monkeypatch.setattr(system, "_installed", lambda module: module != "onnxruntime")
    choice = system.encoding_backend()
    assert choice.backend == "torch" and "pip install onnxruntime" in choice.reason


@pytest.mark.parametrize(("bf16", "backend", "precision"), [(True, "torch-bf16", "bf16"), (False, "torch-fp16", "fp16")])
def test_a_gpu_takes_half_precision_before_any_cpu_path(machine, monkeypatch, bf16, backend, precision):
    machine({"avx2", "avx512", "avx512_vnni", "avx512_bf16"}, gpu=GPU)
    monkeypatch.setattr(system, "cuda_bf16", lambda: bf16)
    assert (system.encoding_backend().backend, system.encoding_backend().device) == (backend, "cuda")
    assert (system.training_precision().precision, system.training_precision().device) == (precision, "cuda")
    assert system.encoding_backend("torch").device == "cuda" and system.encoding_backend("onnx-int8").device == "cpu"


def test_a_request_is_what_runs_and_says_when_it_is_slow(machine):
    machine({"avx2"})
    assert system.encoding_backend("onnx-int8") == system.EncodingChoice("onnx-int8", "int8 weights", "cpu",
                                                                          "requested (--backend onnx-int8)")
    assert "emulated and slower than fp32" in system.encoding_backend("torch-bf16").reason
    assert "emulated and slower than fp32" in system.training_precision("bf16").reason
    assert system.training_precision("fp32") == system.PrecisionChoice("fp32", "cpu", "requested (--precision fp32)")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        system.encoding_backend("torch-fp16")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        system.training_precision("fp16")
    with pytest.raises(ValueError, match="Unknown backend"):
        system.encoding_backend("tensorrt")
