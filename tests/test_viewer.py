"""`syneg view`: the page of a training set, rendered by a real headless chromium (skipped without one)."""

from __future__ import annotations

import html
import json
import random
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from syneg.data import DataError, Negative, TrainingInstance, read_training_set, write_training_set
from syneg.viewer import page_data, training_sets, view

EXPERIMENTS = Path(__file__).resolve().parents[1] / "bench" / "experiments"
SCIFACT_RUN = EXPERIMENTS / "runs" / "scifact"
SCIFACT_SYNTHETIC = EXPERIMENTS / "scifact-synthetic.jsonl"
PAGE_SIZE = 50
VOID_ELEMENTS = {"meta", "input", "br", "img", "hr", "link", "col", "wbr"}  # no end tag in a dumped DOM
PAYLOADS = ("<script>alert(1)</script>", "<script>document.title='pwned'</script>",
            "<img src=x onerror=\"document.title='pwned'\">")


class RenderedPage(HTMLParser):
    """What a dumped DOM shows: its title, elements, text, instance cards and negatives in order."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.title = ""
        self.body: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self.query_ids: list[str] = []
        self.sources: list[str] = []
        self.negative_ids: list[str] = []
        self._open: list[str] = []
        self._in_negative = False
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        classes = attributes.get("class", "").split()
        self.tags.append((tag, attributes))
        if tag == "body":
            self.body = attributes
        if "negative" in classes:
            self.sources.append(attributes["data-source"])
            self._in_negative = True
        elif "instance" in classes or "positive" in classes:
            self._in_negative = False
        role = next((c for c in ("query-id", "doc-id") if c in classes), None)
        if role == "doc-id" and not self._in_negative:
            role = None
        if tag not in VOID_ELEMENTS:
            self._open.append(role or tag)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        where = self._open[-1] if self._open else ""
        if where == "title" and not self.body:  # the page's title, not an SVG bar's
            self.title += data
        elif where == "query-id":
            self.query_ids.append(data.removeprefix("query "))
        elif where == "doc-id":
            self.negative_ids.append(data)
        if where not in ("script", "style"):
            self.texts.append(data)

    def count(self, tag: str, css_class: str | None = None) -> int:
        return sum(1 for name, attributes in self.tags
                   if name == tag and (css_class is None or css_class in attributes.get("class", "").split()))

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def render(browser, page_file: Path, **filters: str) -> RenderedPage:
    """The page as chromium renders it, with ``filters`` in the address (``source="synthetic"``, ``page="2"``)."""
    return RenderedPage(browser.dump_dom(page_file, "#" + urlencode(filters) if filters else ""))


def synthetic_details(domain: str, rejected: list[dict] | None = None) -> dict:
    checks = {"on_topic": {"value": 0.41, "threshold": 0.3, "passed": True},
              "not_echo": {"value": 0.0, "threshold": 0.0, "passed": True}}
    details = {"attributes": {"domain": domain, "difficulty": "expert"}, "aspect": "caffeine in drinks",
               "reasoning": "Same substance, no half-life.", "checks": checks, "rounds": len(rejected or []),
               "generator": "llama.cpp:qwen2.5-0.5b", "ablation": "none"}
    return details | ({"rejected": rejected} if rejected else {})


def mixed_instances() -> list[TrainingInstance]:
    """Every source, BM25 and dense scores, and a synthetic negative accepted after a rejected round."""
    rejected = [{"round": 0, "text": "This passage does not answer the query.", "aspect": "the task", "reasoning": "none",
                 "checks": {"on_topic": {"value": 0.35, "threshold": 0.3, "passed": True},
                            "not_echo": {"value": 1.0, "threshold": 0.0, "passed": False}}}]
    return [
        TrainingInstance("q1", "How long does caffeine stay in the body?", ["d1"], ["Caffeine has a half-life of five hours."], [
            Negative("Coffee beans are roasted.", "bm25", id="d2", score=0.52, scores={"dense": 0.52, "bm25": 11.5}),
            Negative("Green leaves are picked by hand.", "dense", id="d3", score=0.61, scores={"dense": 0.61, "bm25": 3.5}),
            Negative("Caffeine is found in coffee and cocoa.", "synthetic", id="syn-1", score=0.41,
                     scores={"query_similarity": 0.41, "positive_similarity": 0.55, "answer_leak": 0.0},
                     details=synthetic_details("Virology", rejected)),
            Negative("A random passage about rivers.", "random", id="d9"),
        ], pos_scores=[0.7]),
        TrainingInstance("q2", "What lowers blood pressure?", ["d5"], ["Less salt lowers blood pressure."], [
            Negative("Salt is mined from rock deposits.", "bm25", id="d6", score=0.33, scores={"dense": 0.33, "bm25": 8.0}),
            Negative("Exercise changes the heart's shape.", "synthetic", id="syn-2", score=0.45,
                     scores={"query_similarity": 0.45, "positive_similarity": 0.5, "answer_leak": 0.0},
                     details=synthetic_details("Cardiology")),
        ], pos_scores=[0.66]),
    ]


def test_page_of_the_committed_scifact_run(browser, tmp_path):
    """The run folder as committed: its synthesis file is found through the stage marker and shown whole."""
    assert [label for label, _ in training_sets(SCIFACT_RUN)] == ["synthesize: scifact-synthetic.jsonl"]
    page = view(SCIFACT_RUN, tmp_path / "scifact.html")
    shown = render(browser, page)
    assert shown.title == "syneg view: scifact"
    assert "200 of 200 instances, 298 negatives" in shown.text and "page 1 of 4" in shown.text
    assert shown.count("article", "instance") == PAGE_SIZE and set(shown.sources) == {"synthetic"}
    first = json.loads(SCIFACT_SYNTHETIC.read_text().splitlines()[0])
    for text in (first["query"], first["neg"][0], first["neg_details"][0]["reasoning"], "domain: Virology"):
        assert " ".join(text.split()) in shown.text
    assert "on_topic" in shown.text and "✓ pass" in shown.text and "sim(positive) 0.629" in shown.text
    assert shown.count("svg", "histogram") == 1  # the summary strip's distribution of the one source
    assert browser.screenshot(page, tmp_path / "view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_folder_shows_each_set_and_stores_shared_negatives_once(browser, tmp_path):
    """A run folder as `syneg run` leaves it: synthesis, mined pool and one mix per arm and seed."""
    synthetic, mined = mixed_instances(), mixed_instances()
    for instance in synthetic:
        instance.negatives = [n for n in instance.negatives if n.source == "synthetic"]
    for instance in mined:
        instance.negatives = [n for n in instance.negatives if n.source in ("bm25", "dense")]
    write_training_set(tmp_path / "run" / "synthetic.jsonl", synthetic)
    write_training_set(tmp_path / "run" / "mined.jsonl", mined)
    write_training_set(tmp_path / "run" / "arms" / "hybrid" / "seed-1" / "train.jsonl", mixed_instances())
    write_training_set(tmp_path / "run" / "arms" / "bm25" / "seed-1" / "train.jsonl", mined)
    (tmp_path / "run" / "config.yaml").write_text("synthesize: {file: null}\n")
    sets = training_sets(tmp_path / "run")
    assert [label for label, _ in sets] == ["synthesize: synthetic.jsonl", "mine: mined.jsonl", "mix: bm25 seed-1",
                                            "mix: hybrid seed-1"]
    data = page_data(sets, "run")
    # Each text once; a negative once per distinct record: the hybrid mix's first line holds a random negative,
    # so FlagEmbedding's neg_scores, which needs every score, is left out there and three records differ.
    assert len(data["instances"]) == 8 and len(data["texts"]) == 10 and len(data["negatives"]) == 6 + 3

    page = view(tmp_path / "run")
    assert page == tmp_path / "run" / "view.html"
    assert render(browser, page).sources == ["synthetic", "synthetic"]
    assert render(browser, page, set="mix: hybrid seed-1").sources == ["bm25", "dense", "synthetic", "random", "bm25", "synthetic"]


def test_filters_and_sorting_live_in_the_address(browser, tmp_path):
    instances = list(read_training_set(SCIFACT_SYNTHETIC))
    page = view(SCIFACT_SYNTHETIC, tmp_path / "page.html")

    def mentions(instance: TrainingInstance, word: str) -> bool:
        texts = [instance.query, *instance.pos] + [text for n in instance.negatives
                                                    for text in (n.text, n.details.get("aspect", ""), n.details.get("reasoning", ""))]
        return any(word in text.lower() for text in texts)

    searched = render(browser, page, q="telomer")
    assert searched.body["data-matching"] == str(sum(mentions(i, "telomer") for i in instances))

    virology = [n for i in instances for n in i.negatives if n.details["attributes"]["domain"] == "Virology"]
    chosen = render(browser, page, attr="domain: Virology")
    assert len(chosen.sources) == len(virology) < PAGE_SIZE
    assert set(chosen.negative_ids) == {n.id for n in virology}

    hardest = render(browser, page, sort="score-desc")
    expected = sorted((i for i in instances if i.negatives), key=lambda i: -max(n.score for n in i.negatives))
    assert hardest.query_ids == [i.query_id for i in expected[:PAGE_SIZE]]

    last = render(browser, page, page="4")
    assert "page 4 of 4" in last.text and last.query_ids == [i.query_id for i in instances[150:]]


# Drives the page's controls from a frame (chromium lets a file page reach another with
# --allow-file-access-from-files) and writes the address and counts seen after each step into #steps.
CONTROLS_DRIVER = """<iframe id="page" src="page.html" width="1200" height="800"></iframe><pre id="steps"></pre><script>
const frame = document.getElementById("page");
frame.onload = async () => {
  const page = frame.contentDocument, steps = [];
  const settle = () => new Promise((resolve) => setTimeout(resolve, 500));
  const seen = () => steps.push([frame.contentWindow.location.hash, page.body.dataset.matching,
                                 page.querySelector(".page-number").textContent, page.querySelector(".query-id").textContent]);
  const sort = page.getElementById("sort");
  sort.value = "score-desc";
  sort.dispatchEvent(new Event("change"));
  await settle(); seen();
  const search = page.getElementById("q");
  search.value = "telomer";
  search.dispatchEvent(new Event("input"));
  await settle(); seen();
  search.value = "";
  search.dispatchEvent(new Event("input"));
  await settle();
  page.querySelectorAll("#pager-top button")[1].click();
  await settle(); seen();
  document.getElementById("steps").textContent = JSON.stringify(steps);
};
</script>"""


def test_controls_write_the_filters_into_the_address(browser, tmp_path):
    view(SCIFACT_SYNTHETIC, tmp_path / "page.html")
    (tmp_path / "driver.html").write_text(CONTROLS_DRIVER)
    dom = browser.run(tmp_path / "driver.html", "", "--allow-file-access-from-files", "--dump-dom").stdout
    steps = json.loads(html.unescape(re.search(r'<pre id="steps">(.*?)</pre>', dom).group(1)))
    assert steps[:2] == [["#sort=score-desc", "200", "page 1 of 4", "query 1205"],
                         ["#q=telomer&sort=score-desc", "7", "page 1 of 1", "query 990"]]
    assert steps[2][:3] == ["#sort=score-desc&page=2", "200", "page 2 of 4"]


def test_filters_by_source_failed_check_and_attribute(browser, tmp_path):
    write_training_set(tmp_path / "mixed.jsonl", mixed_instances())
    page = view(tmp_path / "mixed.jsonl")
    assert page == tmp_path / "mixed.html"

    everything = render(browser, page)
    assert everything.sources == ["bm25", "dense", "synthetic", "random", "bm25", "synthetic"]
    assert "BM25 11.5" in everything.text and "sim(query) 0.610" in everything.text
    assert "1 rejected candidate before this one" in everything.text and "round 0: failed not_echo" in everything.text
    assert "accepted after 1 revision" in everything.text

    assert render(browser, page, source="synthetic").sources == ["synthetic", "synthetic"]
    assert set(render(browser, page, source="bm25,dense").sources) == {"bm25", "dense"}
    assert render(browser, page, failed="not_echo").negative_ids == ["syn-1"]
    assert render(browser, page, attr="domain: Cardiology").negative_ids == ["syn-2"]
    # A word in a negative shows that negative; a word in the query shows the whole instance.
    mined = render(browser, page, q="MINED")
    assert mined.negative_ids == ["d6"] and "1 other negative hidden by the filters" in mined.text
    assert render(browser, page, q="blood pressure").negative_ids == ["d6", "syn-2"]
    assert render(browser, page, sort="score-asc").negative_ids[:3] == ["d6", "syn-2", "syn-1"]


def test_untrusted_text_is_shown_as_text_and_never_run(browser, tmp_path):
    script, title_script, image = PAYLOADS
    details = synthetic_details(image, [{"round": 0, "text": title_script, "checks": {image: {"value": 1, "passed": False}}}])
    details["reasoning"] = title_script
    instance = TrainingInstance(title_script, f"query {script}", [image], [f"positive {image}"], [
        Negative(f"negative {script} {title_script}", "synthetic", id=image, score=0.4, scores={image: 0.4}, details=details)])
    path = tmp_path / (image + ".jsonl")
    write_training_set(path, [instance])
    page = view(path, tmp_path / "page.html")
    assert page.read_text().count("</script>") == 2  # the data block's and the page script's own: the data cannot close one

    shown = render(browser, page)
    assert shown.title == f"syneg view: {image}.jsonl"  # no payload ran: the title is unchanged
    assert shown.count("img") == 0 and shown.count("script") == 2
    for text in (f"query {script}", f"negative {script} {title_script}", f"positive {image}", f"domain: {image}"):
        assert text in shown.text
    assert render(browser, page, failed=image).negative_ids == [image]


def test_ten_thousand_instances_load_and_filter_without_freezing(browser, tmp_path):
    """Ten thousand instances of five passages each: the page renders one page of them, parsed, filtered and
    sorted in the browser within a few seconds even on a busy CPU."""
    rng = random.Random(0)
    words = [f"w{index}" for index in range(3000)]

    def passage() -> str:
        return " ".join(rng.choices(words, k=60))

    instances = [
        TrainingInstance(str(index), passage()[:80], [f"d{index}"], [passage()], [
            Negative(passage(), source, id=f"n{index}-{slot}", score=round(rng.random(), 4),
                     scores={"dense": round(rng.random(), 4), "bm25": round(10 * rng.random(), 2)})
            for slot, source in enumerate(("bm25", "dense", "synthetic", "random"))])
        for index in range(10_000)]
    write_training_set(tmp_path / "big.jsonl", instances)
    started = time.perf_counter()
    page = view(tmp_path / "big.jsonl")
    assert time.perf_counter() - started < 60

    started = time.perf_counter()
    shown = render(browser, page, q="w1234", sort="score-desc", source="synthetic,bm25")
    browser_seconds = time.perf_counter() - started
    expected = sum(1 for i in instances if "w1234" in i.query + i.pos[0]
                   or any(n.source in ("synthetic", "bm25") and "w1234" in n.text for n in i.negatives))
    assert int(shown.body["data-matching"]) == expected > PAGE_SIZE and shown.count("article", "instance") == PAGE_SIZE
    assert int(shown.body["data-render-ms"]) < 5000, "parse, filter, sort and render took too long in the page"
    assert browser_seconds < 120


def test_bad_input_names_the_file_and_line(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        view(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="neither a training-set jsonl nor a run folder"):
        view(tmp_path)
    (tmp_path / "stages").mkdir()
    with pytest.raises(DataError, match="holds no training set"):
        view(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"]}\n{"query": "q", "pos": ["p"], "neg": ["n"], "neg_sources": ["llm"]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: unknown negative source 'llm'"):
        view(bad)
    bad.write_text('{"query": ["not", "a", "text"], "pos": ["p"]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: 'query' must be a string, got list"):
        page_data([("bad", bad)], "bad")
