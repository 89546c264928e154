"""Prompt templates for synthesis, kept as plain text files a user can read and override.

The shipped templates live in ``syneg/synth/prompts/*.txt`` and use ``$name`` placeholders
(:class:`string.Template`), so the JSON examples in them need no escaping. Pass a folder to
:class:`PromptTemplates` to override any of them: a file with the same name there wins.

Templates: ``system`` (the expert role, with ``$domain``), ``system_plain`` (no attributes),
``reflect`` (``$query``, ``$positive``: the topic, aspect and reasoning) and ``write`` (``$aspect``,
``$topic``, ``$attributes``, and ``$subject``, the query: the text) for the two-step prompt, ``generate`` (``$query``,
``$positive``, ``$attributes``) for the single-call prompt, ``generate_plain`` (no reasoning: the
paper's "without attributes and reflection" ablation), ``revise`` (``$reasons``; ``$previous``, the rejected text, is available too, but small models copy
it back verbatim, so the shipped template leaves it out),
``critique`` (``$query``, ``$negative``) and ``propose_domains`` (``$samples``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template

NAMES = ("system", "system_plain", "reflect", "write", "generate", "generate_plain", "revise", "critique", "propose_domains")


class PromptTemplates:
    """The prompt templates, with user overrides from ``folder``.

    Example::

        >>> PromptTemplates().render("critique", query="Does caffeine help?", negative="Tea is old.").splitlines()[0]
        'Search query: Does caffeine help?'
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: prompt folder not found")
        self.templates: dict[str, Template] = {}
        for name in NAMES:
            override = self.folder / f"{name}.txt" if self.folder is not None else None
            if override is not None and override.is_file():
                text = override.read_text(encoding="utf-8")
            else:
                text = (files("syneg.synth") / "prompts" / f"{name}.txt").read_text(encoding="utf-8")
            self.templates[name] = Template(text.strip())

    def render(self, name: str, **values: str) -> str:
        """Fill a template; a placeholder missing from ``values`` raises ``KeyError`` naming it."""
        return self.templates[name].substitute(values)

    def fixed_pieces(self, name: str) -> list[str]:
        """A template's own wording: the text between its placeholders (what an echo check looks for).

            >>> PromptTemplates().fixed_pieces("system")
            ['You are an expert in']
        """
        template = self.templates[name]
        pieces = template.pattern.split(template.template)[:: template.pattern.groups + 1]
        return [piece.strip() for piece in pieces if piece and any(c.isalnum() for c in piece)]
