// syneg view: renders the training set held as JSON in <script id="data">, one page of instances at a time.
// Every text comes from a corpus or an LLM: it is only ever set with textContent, never parsed as HTML.
// The filters live in the address's # part (set, source, failed, attr, q, sort, page), so a filtered view
// can be bookmarked, and `chromium --dump-dom page.html#source=synthetic` shows it from the command line.
"use strict";
(function () {
  const started = performance.now();
  const PAGE_SIZE = 50;
  const BINS = 20;
  const SOURCES = ["synthetic", "bm25", "dense", "random"];
  const SCORE_LABELS = {
    query_similarity: "sim(query)", dense: "sim(query)", positive_similarity: "sim(positive)",
    bm25: "BM25", answer_leak: "answer leak",
  };
  const SHOWN_DETAILS = new Set(["attributes", "aspect", "reasoning", "checks", "rounds", "rejected", "critique"]);
  const data = JSON.parse(document.getElementById("data").textContent);
  const texts = data.texts;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function fmt(value) {
    if (typeof value !== "number") return value === undefined || value === null ? "–" : String(value);
    const size = Math.abs(value);  // similarities keep three decimals, BM25 scores fewer
    return value.toFixed(size >= 100 ? 0 : size >= 10 ? 1 : size >= 1 ? 2 : 3);
  }

  // What each negative offers the filters, computed once.
  const facts = data.negatives.map((negative) => {
    const details = isObject(negative.details) ? negative.details : {};
    const rejected = Array.isArray(details.rejected) ? details.rejected.filter(isObject) : [];
    const checks = new Set();
    const failed = new Set();
    for (const round of [details, ...rejected]) {
      if (!isObject(round.checks)) continue;
      for (const [name, check] of Object.entries(round.checks)) {
        checks.add(name);
        if (isObject(check) && check.passed === false) failed.add(name);
      }
    }
    const attributes = isObject(details.attributes)
      ? Object.entries(details.attributes).map(([name, value]) => name + ": " + value) : [];
    const searchable = [texts[negative.text], details.aspect, details.reasoning, ...rejected.map((r) => r.text)];
    return {details, rejected, checks, failed, attributes, searchable, haystack: null};
  });

  function negativeHaystack(index) {
    const fact = facts[index];
    if (fact.haystack === null) fact.haystack = fact.searchable.filter((t) => typeof t === "string").join("\n").toLowerCase();
    return fact.haystack;
  }

  const instanceHaystacks = new Map();
  function instanceHaystack(instance) {
    let haystack = instanceHaystacks.get(instance);
    if (haystack === undefined) {
      haystack = [instance.query_id, texts[instance.query], ...instance.positives.map((p) => texts[p.text])].join("\n").toLowerCase();
      instanceHaystacks.set(instance, haystack);
    }
    return haystack;
  }

  // One similarity axis for every histogram, so that sources compare at a glance.
  const range = [Infinity, -Infinity];
  for (const negative of data.negatives) {
    if (typeof negative.similarity !== "number") continue;
    range[0] = Math.min(range[0], negative.similarity);
    range[1] = Math.max(range[1], negative.similarity);
  }
  if (range[0] > range[1]) range.splice(0, 2, 0, 1);
  if (range[1] <= range[0]) range[1] = range[0] + 1e-6;

  // ---- state <-> address

  const state = {set: 0, sources: new Set(SOURCES), failed: "", attr: "", q: "", sort: "", page: 1};

  function readAddress() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const set = data.sets.findIndex((s) => s.label === params.get("set"));
    state.set = set >= 0 ? set : 0;
    const sources = (params.get("source") || "").split(",").filter((s) => SOURCES.includes(s));
    state.sources = new Set(sources.length ? sources : SOURCES);
    state.failed = params.get("failed") || "";
    state.attr = params.get("attr") || "";
    state.q = params.get("q") || "";
    state.sort = ["score-desc", "score-asc"].includes(params.get("sort")) ? params.get("sort") : "";
    state.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  }

  function writeAddress(changes) {
    Object.assign(state, {page: 1}, changes);
    const params = new URLSearchParams();
    if (state.set > 0) params.set("set", data.sets[state.set].label);
    if (state.sources.size < SOURCES.length) params.set("source", SOURCES.filter((s) => state.sources.has(s)).join(","));
    for (const key of ["failed", "attr", "q", "sort"]) if (state[key]) params.set(key, state[key]);
    if (state.page > 1) params.set("page", String(state.page));
    const hash = "#" + params.toString().replace(/%2C/g, ",");
    if (hash === location.hash || (hash === "#" && !location.hash)) render();
    else location.replace(hash);  // fires hashchange, which renders; no history entry per keystroke
  }

  // ---- filtering

  function matching() {
    const q = state.q.trim().toLowerCase();
    const filtersNegatives = state.sources.size < SOURCES.length || state.failed !== "" || state.attr !== "";
    const shown = [];
    for (const instance of data.instances) {
      if (instance.set !== state.set) continue;
      const instanceHit = !q || instanceHaystack(instance).includes(q);
      const negatives = instance.negatives.filter((index) => {
        const fact = facts[index];
        if (!state.sources.has(data.negatives[index].source)) return false;
        if (state.failed === "any" ? fact.failed.size === 0 : state.failed && !fact.failed.has(state.failed)) return false;
        if (state.attr && !fact.attributes.includes(state.attr)) return false;
        return instanceHit || negativeHaystack(index).includes(q);
      });
      if (negatives.length || (instanceHit && !filtersNegatives)) shown.push({instance, negatives});
    }
    if (state.sort) {
      const sign = state.sort === "score-desc" ? -1 : 1;
      const similarity = (index) => data.negatives[index].similarity;
      const known = (value) => typeof value === "number";
      const bySimilarity = (a, b) => (known(a) ? (known(b) ? sign * (a - b) : -1) : (known(b) ? 1 : 0));
      for (const entry of shown) {
        entry.negatives = entry.negatives.slice().sort((a, b) => bySimilarity(similarity(a), similarity(b)));
        entry.key = entry.negatives.length ? similarity(entry.negatives[0]) : null;
      }
      shown.sort((a, b) => bySimilarity(a.key, b.key));
    }
    return shown;
  }

  // ---- summary strip

  function histogram(values, source) {
    const svgNS = "http://www.w3.org/2000/svg";
    const width = 160;
    const height = 40;
    const counts = new Array(BINS).fill(0);
    for (const value of values) {
      const bin = Math.floor(((value - range[0]) / (range[1] - range[0])) * BINS);
      counts[Math.min(BINS - 1, Math.max(0, bin))] += 1;
    }
    const most = Math.max(1, ...counts);
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("class", "histogram");
    const step = (range[1] - range[0]) / BINS;
    counts.forEach((count, bin) => {
      const barHeight = (count / most) * (height - 2);
      const rect = document.createElementNS(svgNS, "rect");
      rect.setAttribute("x", String((bin * width) / BINS + 0.5));
      rect.setAttribute("y", String(height - barHeight));
      rect.setAttribute("width", String(width / BINS - 1));
      rect.setAttribute("height", String(Math.max(count ? 1 : 0, barHeight)));
      rect.setAttribute("class", "bar-" + source);
      const title = document.createElementNS(svgNS, "title");
      title.textContent = `${fmt(range[0] + bin * step)}–${fmt(range[0] + (bin + 1) * step)}: ${count}`;
      rect.append(title);
      svg.append(rect);
    });
    return svg;
  }

  function renderSummary(shown) {
    const inSet = data.instances.reduce((count, instance) => count + (instance.set === state.set ? 1 : 0), 0);
    const bySource = new Map();
    for (const entry of shown) {
      for (const index of entry.negatives) {
        const negative = data.negatives[index];
        if (!bySource.has(negative.source)) bySource.set(negative.source, []);
        bySource.get(negative.source).push(negative.similarity);
      }
    }
    const negatives = shown.reduce((count, entry) => count + entry.negatives.length, 0);
    const summary = document.getElementById("summary");
    const counts = el("div", "counts");
    counts.append(el("strong", null, shown.length.toLocaleString("en")),
      ` of ${inSet.toLocaleString("en")} instances, ${negatives.toLocaleString("en")} negatives`);
    const distributions = el("div", "distributions");
    for (const source of SOURCES.filter((s) => bySource.has(s))) {
      const values = bySource.get(source).filter((v) => typeof v === "number");
      const figure = el("figure", "distribution");
      const caption = el("figcaption");
      const mean = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
      caption.append(badge(source), ` ${bySource.get(source).length.toLocaleString("en")}`,
        el("span", "muted", values.length ? ` · mean sim ${fmt(mean)}` : " · no dense score"));
      figure.append(caption);
      if (values.length) {
        figure.append(histogram(values, source));
        const axis = el("div", "axis");
        axis.append(el("span", null, fmt(range[0])), el("span", null, "similarity to query"), el("span", null, fmt(range[1])));
        figure.append(axis);
      }
      distributions.append(figure);
    }
    summary.replaceChildren(counts, distributions);
  }

  // ---- instances

  function badge(source) {
    return el("span", "badge source-" + source, source);
  }

  function chip(label, value, title) {
    const node = el("span", "chip");
    node.append(el("span", "chip-label", label), " " + fmt(value));
    if (title) node.title = title;
    return node;
  }

  function textBlock(text) {
    const block = el("p", "text clipped", text);
    block.title = "click to show all / less";
    block.addEventListener("click", () => block.classList.toggle("clipped"));
    return block;
  }

  // One column per check, so that a negative's seven checks take four short lines.
  function checksTable(checks) {
    const table = el("table", "checks");
    const entries = Object.entries(checks);
    const passed = entries.map(([, check]) => !(isObject(check) && check.passed === false));
    const names = table.createTHead().insertRow();
    names.append(el("th", null, "check"));
    const body = table.createTBody();
    const values = body.insertRow();
    const thresholds = body.insertRow();
    const verdicts = body.insertRow();
    values.append(el("th", null, "value"));
    thresholds.append(el("th", null, "threshold"));
    verdicts.append(el("th", null, "verdict"));
    entries.forEach(([name, check], column) => {
      const verdict = passed[column] ? "passed" : "failed";
      names.append(el("th", verdict, name));
      values.append(el("td", "num " + verdict, fmt(isObject(check) ? check.value : null)));
      thresholds.append(el("td", "num " + verdict, fmt(isObject(check) ? check.threshold : null)));
      verdicts.append(el("td", "verdict " + verdict, passed[column] ? "✓ pass" : "✗ fail"));
    });
    return table;
  }

  function labelled(label, text, className) {
    const line = el("div", className || "field");
    line.append(el("span", "field-label", label), " ", el("span", null, text));
    return line;
  }

  function candidateDetails(details) {
    const box = el("div", "details");
    if (isObject(details.attributes)) {
      const attributes = el("div", "attributes");
      for (const [name, value] of Object.entries(details.attributes)) attributes.append(el("span", "attribute", name + ": " + value));
      box.append(attributes);
    }
    if (details.aspect) box.append(labelled("aspect", details.aspect));
    if (details.reasoning) box.append(labelled("reasoning", details.reasoning, "field reasoning"));
    if (isObject(details.critique)) {
      const answers = details.critique.answers_query ? "answers the query" : "does not answer the query";
      box.append(labelled("LLM critique", `${answers}: ${details.critique.reason || ""}`));
    }
    if (isObject(details.checks)) box.append(checksTable(details.checks));
    return box;
  }

  function negativeNode(index) {
    const negative = data.negatives[index];
    const fact = facts[index];
    const details = fact.details;
    const box = el("section", "passage negative source-" + negative.source);
    box.dataset.source = negative.source;
    const head = el("div", "passage-head");
    head.append(badge(negative.source));
    const scores = isObject(negative.scores) ? Object.entries(negative.scores) : [];
    for (const [name, value] of scores) head.append(chip(SCORE_LABELS[name] || name, value, name));
    if (!scores.length && typeof negative.score === "number") head.append(chip("score", negative.score));
    if (typeof details.rounds === "number") {
      const rounds = details.rounds === 0 ? "accepted in round 0" : `accepted after ${details.rounds} revision${details.rounds > 1 ? "s" : ""}`;
      head.append(el("span", details.rounds ? "rounds revised" : "rounds", rounds));
    }
    if (negative.id) head.append(el("span", "doc-id", negative.id));
    box.append(head, textBlock(texts[negative.text]));
    if (Object.keys(details).some((key) => SHOWN_DETAILS.has(key))) box.append(candidateDetails(details));
    const others = Object.entries(details).filter(([key]) => !SHOWN_DETAILS.has(key));
    if (others.length) {
      const other = el("div", "field other");
      other.textContent = others.map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`).join(" · ");
      box.append(other);
    }
    if (fact.rejected.length) {
      const rejected = el("details", "rejected");
      rejected.append(el("summary", null, `${fact.rejected.length} rejected candidate${fact.rejected.length > 1 ? "s" : ""} before this one`));
      for (const candidate of fact.rejected) {
        const failed = isObject(candidate.checks)
          ? Object.entries(candidate.checks).filter(([, c]) => isObject(c) && c.passed === false).map(([name]) => name) : [];
        const item = el("div", "candidate");
        item.append(el("div", "candidate-head", `round ${candidate.round ?? "?"}: failed ${failed.join(", ") || "–"}`),
          textBlock(typeof candidate.text === "string" ? candidate.text : ""), candidateDetails(candidate));
        rejected.append(item);
      }
      box.append(rejected);
    }
    return box;
  }

  function instanceNode(entry) {
    const instance = entry.instance;
    const card = el("article", "instance");
    const head = el("div", "instance-head");
    head.append(el("span", "query-id", "query " + instance.query_id),
      el("span", "where", `${data.sets[instance.set].file}:${instance.line}`));
    card.append(head, el("div", "query", texts[instance.query]));
    for (const positive of instance.positives) {
      const box = el("section", "passage positive");
      const line = el("div", "passage-head");
      line.append(el("span", "badge positive", "positive"));
      if (typeof positive.score === "number") line.append(chip("score", positive.score, "pos_scores"));
      if (positive.id) line.append(el("span", "doc-id", positive.id));
      box.append(line, textBlock(texts[positive.text]));
      card.append(box);
    }
    if (!instance.negatives.length) card.append(el("div", "empty", "no negatives"));
    for (const index of entry.negatives) card.append(negativeNode(index));
    const hidden = instance.negatives.length - entry.negatives.length;
    if (hidden > 0) card.append(el("div", "muted", `${hidden} other negative${hidden > 1 ? "s" : ""} hidden by the filters`));
    return card;
  }

  function renderPager(pages) {
    for (const id of ["pager-top", "pager-bottom"]) {
      const pager = document.getElementById(id);
      const previous = el("button", null, "‹ previous");
      previous.disabled = state.page <= 1;
      previous.addEventListener("click", () => { writeAddress({page: state.page - 1}); window.scrollTo(0, 0); });
      const next = el("button", null, "next ›");
      next.disabled = state.page >= pages;
      next.addEventListener("click", () => { writeAddress({page: state.page + 1}); window.scrollTo(0, 0); });
      pager.replaceChildren(previous, el("span", "page-number", `page ${state.page} of ${pages}`), next);
    }
  }

  function render() {
    const shown = matching();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages);
    syncControls();
    renderSummary(shown);
    renderPager(pages);
    const cards = document.createDocumentFragment();
    for (const entry of shown.slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE)) cards.append(instanceNode(entry));
    if (!shown.length) cards.append(el("p", "empty", "No instance matches these filters."));
    document.getElementById("instances").replaceChildren(cards);
    document.body.dataset.matching = String(shown.length);
    document.body.dataset.renderMs = (performance.now() - started).toFixed(0);
  }

  // ---- controls

  function option(value, label) {
    const node = el("option", null, label);
    node.value = value;
    return node;
  }

  const controls = {
    set: document.getElementById("set"), failed: document.getElementById("failed"), attr: document.getElementById("attr"),
    sort: document.getElementById("sort"), q: document.getElementById("q"), sources: new Map(),
  };

  function buildControls() {
    document.getElementById("title").textContent = data.title;
    data.sets.forEach((set, index) => controls.set.append(option(String(index), set.label)));
    document.getElementById("set-control").hidden = data.sets.length < 2;
    const present = new Set(data.negatives.map((n) => n.source));
    const sources = document.getElementById("sources");
    for (const source of SOURCES.filter((s) => present.has(s))) {
      const label = el("label", "source-toggle");
      const box = el("input");
      box.type = "checkbox";
      box.addEventListener("change", () => {
        const chosen = new Set([...controls.sources].filter(([, input]) => input.checked).map(([name]) => name));
        writeAddress({sources: chosen.size ? chosen : new Set(SOURCES)});
      });
      controls.sources.set(source, box);
      label.append(box, badge(source));
      sources.append(label);
    }
    const checks = new Set();
    const attributes = new Map();
    for (const fact of facts) {
      fact.checks.forEach((name) => checks.add(name));
      for (const value of fact.attributes) attributes.set(value, (attributes.get(value) || 0) + 1);
    }
    if (checks.size) controls.failed.append(option("any", "any check failed in some round"));
    for (const name of [...checks].sort()) controls.failed.append(option(name, name));
    for (const [value, count] of [...attributes].sort()) controls.attr.append(option(value, `${value} (${count})`));
    controls.set.addEventListener("change", () => writeAddress({set: Number(controls.set.value)}));
    for (const key of ["failed", "attr", "sort"]) controls[key].addEventListener("change", () => writeAddress({[key]: controls[key].value}));
    let typing = null;
    controls.q.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => writeAddress({q: controls.q.value}), 250);
    });
  }

  function syncControls() {
    controls.set.value = String(state.set);
    for (const [source, box] of controls.sources) box.checked = state.sources.has(source);
    for (const key of ["failed", "attr", "sort"]) {
      if (state[key] && ![...controls[key].options].some((o) => o.value === state[key])) controls[key].append(option(state[key], state[key]));
      controls[key].value = state[key];
    }
    if (controls.q.value !== state.q && document.activeElement !== controls.q) controls.q.value = state.q;
  }

  buildControls();
  readAddress();
  render();
  window.addEventListener("hashchange", () => { readAddress(); render(); });
})();
