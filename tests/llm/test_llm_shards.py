"""The sharded request cache: many writing processes at once, each with its own file, read together."""

from __future__ import annotations

import multiprocessing

from syneg.llm import Completion
from syneg.llm.shards import ShardedRequestCache


def write_entries(folder: str, writer: int, count: int) -> None:
    cache = ShardedRequestCache(folder, read=False)
    for index in range(count):
        cache.put(f"{writer}-{index}", Completion(text=f"answer {writer}/{index}", completion_tokens=index))
    cache.close()


def test_many_writers_at_once_are_read_together(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=write_entries, args=(str(tmp_path), writer, 200)) for writer in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    cache = ShardedRequestCache(tmp_path)
    assert len(cache) == 800 and len(list(tmp_path.glob("*.jsonl"))) == 4
    answer = cache.get("3-199")
    assert answer.text == "answer 3/199" and answer.completion_tokens == 199 and answer.cached


def test_a_torn_line_is_skipped_and_read_once_completed(tmp_path):
    writer = ShardedRequestCache(tmp_path)
    writer.put("done", Completion(text="kept"))
    shard = next(tmp_path.glob("*.jsonl"))
    with shard.open("a") as file:
        file.write('{"key": "torn", "value": {"te')  # a writer killed mid-line
    reader = ShardedRequestCache(tmp_path)
    assert reader.get("done").text == "kept" and reader.get("torn") is None
    with shard.open("a") as file:
        file.write('xt": "late"}}\n')
    reader.refresh()  # only the new bytes are read
    assert reader.get("torn").text == "late" and len(reader) == 2


def test_a_known_answer_is_not_written_twice(tmp_path):
    first = ShardedRequestCache(tmp_path)
    first.put("k", Completion(text="a"))
    second = ShardedRequestCache(tmp_path)
    second.put("k", Completion(text="a"))  # another writer that read the folder first
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
