"""Backend ``vllm`` (Ray Data's vLLM engine processor) without vLLM: no GPU here, so no generation is run or faked.

What is checked is syneg's side of the processor: the rows it hands vLLM (through Arrow, as Ray Data does), its
reading of the engine's rows, the cache records its postprocess writes and replays, the option and its plumbing
(schema, config, CLI, fingerprints), and the one line a machine without vLLM gets.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from syneg import cli
from syneg.data import demo_path
from syneg.engine import RayEngine
from syneg.engine.synthesis import (
    RayVLLMBackend,
    check_backend,
    completion_from_row,
    request_row,
    vllm_installed,
    vllm_postprocess,
    vllm_preprocess,
    vllm_row,
)
from syneg.llm import ChatRequest
from syneg.llm.shards import ShardedRequestCache
from syneg.pipeline import RunConfig
from syneg.pipeline.plan import NOT_GENERATION, recorded_options
from syneg.synth import SynthesizeOptions

SCHEMA = {"type": "object", "properties": {"passage": {"type": "string"}}, "required": ["passage"]}
OTHER_SCHEMA = {"type": "object", "properties": {"domains": {"type": "array", "items": {"type": "string"}}}}
MODEL = "Qwen/Qwen2.5-7B-Instruct"


def request(schema: dict | None = SCHEMA, **fields) -> ChatRequest:
    return ChatRequest.chat("You write passages.", "Write one.", schema=schema, **fields)


def test_a_request_becomes_the_row_vllm_reads():
    row = vllm_row(request(max_tokens=64, temperature=0.3, seed=7, repeat_penalty=1.1))
    assert row["messages"] == [{"role": "system", "content": "You write passages."}, {"role": "user", "content": "Write one."}]
    assert row["sampling_params"] == {"temperature": 0.3, "max_tokens": 64, "seed": 7, "repetition_penalty": 1.1,
                                      "structured_outputs": {"json": '{"type": "object", "properties": {"passage": '
                                                                     '{"type": "string"}}, "required": ["passage"]}'}}
    assert row["max_tokens"] == 64
    plain = vllm_row(request(schema=None))
    assert plain["sampling_params"]["structured_outputs"] is None  # vLLM's processor then asks no structured output
    assert plain["sampling_params"].keys() == row["sampling_params"].keys()


def test_rows_keep_their_own_schema_and_parameters_through_an_arrow_block():
    pyarrow = pytest.importorskip("pyarrow")
    rows = [vllm_row(request(SCHEMA, seed=1)), vllm_row(request(OTHER_SCHEMA, seed=2)), vllm_row(request(None, seed=3))]
    assert pyarrow.Table.from_pylist(rows).to_pylist() == rows  # no field of one row added to another as null


def test_the_preprocess_reads_a_batch_row_back_into_the_request_row():
    asked = request(max_tokens=32, seed=5)
    row = request_row("k1", asked)
    assert vllm_preprocess(row) == vllm_row(asked)


def test_the_engines_row_becomes_a_completion():
    row = {"generated_text": '{"passage": "x"}', "num_input_tokens": 41, "num_generated_tokens": 9, "max_tokens": 64}
    completion = completion_from_row(row)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ('{"passage": "x"}', 41, 9)
    assert completion.finish_reason == "stop"
    assert completion_from_row(row | {"num_generated_tokens": 64}).finish_reason == "length"


def test_the_postprocess_records_answers_that_a_rerun_replays_without_asking(tmp_path):
    folder = tmp_path / "cache.shards"
    asked = request(seed=3)
    key = asked.cache_key(RayVLLMBackend.name, MODEL)
    row = {"key": key, "generated_text": "answer", "num_input_tokens": 12, "num_generated_tokens": 2, "max_tokens": 200}
    assert vllm_postprocess(row, str(folder)) == {"key": key, "ok": True, "error": ""}
    recorded = ShardedRequestCache(folder).get(key)
    assert (recorded.text, recorded.prompt_tokens, recorded.completion_tokens, recorded.finish_reason) == ("answer", 12, 2, "stop")

    class NothingSent(RayVLLMBackend):
        def _process(self, batch):
            raise AssertionError(f"asked again: {batch}")

    backend = NothingSent(MODEL, ShardedRequestCache(folder), RayEngine())
    assert asyncio.run(backend.complete(asked)).text == "answer"


def test_the_requests_in_flight_go_as_one_batch_answered_from_the_workers_records(tmp_path):
    folder = tmp_path / "cache.shards"

    class EngineStandIn(RayVLLMBackend):  # the processor's job replaced by its postprocess over made-up engine rows
        linger = 0.01

        def _process(self, batch):
            return [vllm_postprocess({"key": key, "generated_text": f"answer {asked.seed}", "num_input_tokens": 5,
                                      "num_generated_tokens": 2, "max_tokens": asked.max_tokens}, str(folder))
                    for key, asked in batch]

    backend = EngineStandIn(MODEL, ShardedRequestCache(folder), RayEngine())

    async def ask() -> list:
        return await asyncio.gather(*(backend.complete(request(seed=seed)) for seed in range(3)))

    answers = asyncio.run(ask())
    assert [answer.text for answer in answers] == ["answer 0", "answer 1", "answer 2"] and backend.batches == [3]
    assert not any(answer.cached for answer in answers)


def test_the_processor_config_carries_the_gpu_settings(tmp_path):
    pytest.importorskip("ray.data.llm")
    backend = RayVLLMBackend(MODEL, ShardedRequestCache(tmp_path), RayEngine(), tensor_parallel_size=2, max_model_len=4096,
                             batch_size=16, replicas=3, accelerator_type="H100")
    config = backend.processor_config()
    assert (config.model_source, config.batch_size, config.concurrency, config.accelerator_type) == (MODEL, 16, (3, 3), "H100")
    assert config.engine_kwargs["tensor_parallel_size"] == 2 and config.engine_kwargs["max_model_len"] == 4096


def test_the_option_is_checked_before_any_work():
    with pytest.raises(ValidationError):
        SynthesizeOptions(backend="vllm", vllm_replicas=0)
    with pytest.raises(ValueError, match="--engine ray"):
        check_backend(SynthesizeOptions(backend="vllm", model=MODEL))
    with pytest.raises(ValueError, match="needs --model"):
        check_backend(SynthesizeOptions(backend="vllm", engine="ray"))
    if not vllm_installed():
        with pytest.raises(ImportError, match=r"pip install 'syneg\[vllm\]'"):
            check_backend(SynthesizeOptions(backend="vllm", engine="ray", model=MODEL))


def test_the_gpu_settings_stay_out_of_the_fingerprint_and_the_backend_does_not():
    def generation(**fields) -> dict:
        return recorded_options(SynthesizeOptions(**fields), "synthesize", exclude=NOT_GENERATION)

    vllm = generation(backend="vllm", model=MODEL)
    assert generation(backend="vllm", model=MODEL, vllm_tensor_parallel_size=4, vllm_max_model_len=8192, vllm_batch_size=8,
                      vllm_replicas=2, vllm_accelerator_type="A100") == vllm
    assert generation(backend="openai", model=MODEL) != vllm
    assert not any(key.startswith("vllm_") for key in generation())  # the markers of earlier runs stay valid


def test_a_config_and_the_command_line_set_the_option(tmp_path, monkeypatch):
    path = tmp_path / "run.yaml"
    path.write_text(f"data: demo\nengine: ray\nsynthesize: {{backend: vllm, model: {MODEL}, vllm_tensor_parallel_size: 2, "
                    "vllm_replicas: 4, vllm_accelerator_type: H100}\n")
    section = RunConfig.load(path).synthesize
    assert (section.backend, section.engine, section.vllm_tensor_parallel_size, section.vllm_replicas) == ("vllm", "ray", 2, 4)

    seen = {}
    monkeypatch.setattr("syneg.synth.synthesize", lambda data, output, options, **kwargs: seen.setdefault("options", options))
    result = CliRunner().invoke(cli.app, ["synthesize", str(demo_path()), "-o", str(tmp_path / "out.jsonl"), "--engine", "ray",
                                          "--backend", "vllm", "--model", MODEL, "--vllm-tensor-parallel-size", "2",
                                          "--vllm-max-model-len", "4096", "--vllm-batch-size", "8", "--vllm-replicas", "3",
                                          "--vllm-accelerator-type", "H100", "--json"])
    options = seen["options"]
    assert (options.backend, options.model, options.vllm_tensor_parallel_size, options.vllm_max_model_len,
            options.vllm_batch_size, options.vllm_replicas, options.vllm_accelerator_type) == ("vllm", MODEL, 2, 4096, 8, 3, "H100"), result.output


@pytest.mark.skipif(vllm_installed(), reason="vLLM is installed: the command would start a synthesis")
def test_without_vllm_the_command_says_what_to_install_in_one_line(tmp_path):
    command = [sys.executable, "-m", "syneg", "synthesize", str(demo_path()), "-o", str(tmp_path / "out.jsonl"), "--limit", "1",
               "--engine", "ray", "--backend", "vllm", "--model", MODEL]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip().count("\n") == 0 and "pip install 'syneg[vllm]'" in completed.stderr
    assert "Traceback" not in completed.stderr and not Path(tmp_path / "out.jsonl").exists()


@pytest.mark.skipif(vllm_installed(), reason="vLLM is installed: the run would go on to mine and synthesize")
def test_a_pipeline_without_vllm_stops_before_mining(tmp_path):
    from syneg.pipeline import run

    config = RunConfig(data=demo_path(), engine="ray", synthesize={"backend": "vllm", "model": MODEL})
    with pytest.raises(ImportError, match=r"syneg\[vllm\]"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run" / "mined.jsonl").exists()
