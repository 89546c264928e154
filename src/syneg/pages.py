"""Self-contained HTML pages (``syneg view``, ``syneg report``): one file that opens from disk, with its
CSS, script, data and images inline, and nothing fetched from the network.

What the pages show is corpus and LLM text, which is untrusted. Text written into the HTML itself is
escaped with :func:`html.escape`; data handed to a page's script travels in a
``<script type="application/json">`` block written by :func:`script_json`, which nothing in the data
can close, and the script renders it as text only (``textContent``). A Content-Security-Policy lets no
other script run and nothing load from outside the file, should anything still slip through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).with_name("assets")  # the pages' CSS and JavaScript, kept as files to read and lint


def asset(name: str) -> str:
    """The text of a file in ``syneg/assets`` (``page.css``, ``view.css``, ``view.js``)."""
    return (ASSETS / name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """``data`` as JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` are written
    as JSON escapes, so no text can end the block (``</script>``) or open a comment; ``JSON.parse`` gives
    the text back unchanged.

    >>> script_json({"text": "</script><b>&"})
    '{"text":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def standalone_page(title: str, body: str, style: str, script: str = "") -> str:
    """An HTML document of ``body`` (HTML already made safe) with ``style`` and ``script`` inline.

    The policy allows images from data URIs, the inline style, and the one script given, by its hash.

    >>> page = standalone_page("a <b> title", "<p>hi</p>", "p {color: red}")
    >>> "<title>a &lt;b&gt; title</title>" in page and "script-src 'none'" in page
    True
    """
    script_source = "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'" if script else "'none'"
    policy = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script_source}"
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{html.escape(title)}</title>\n<style>\n{style}</style>\n</head>\n<body>\n{body}\n",
        f"<script>{script}</script>\n" if script else "",
        "</body>\n</html>\n",
    ])
