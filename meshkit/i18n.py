"""Which language the labs speak (English or Korean), and how a text finds its Korean twin.

The language is chosen, most specific first, by
1. an explicit `lang=` (`meshkit.lab("04-rds", lang="ko")`), which also becomes the session's choice;
2. the notebook's own folder: a kernel runs in its notebook's folder, and the Korean edition lives
   in `labs/ko/` and `solutions/ko/`, so a Korean notebook speaks Korean with the very same code
   cells as the English one;
3. `MESHKIT_LANG` (`meshkit lab --lang ko` and `make lab LANG=ko` set it);
4. English.

Translations are keyed by a short hash of the English text they translate: when the English
changes, its old translation no longer matches and the tests name the text that lacks one.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from pathlib import Path

EN = "en"
KO = "ko"
LANGS = (EN, KO)
EDITION_PARENTS = ("labs", "solutions")  # labs/ko and solutions/ko hold the Korean edition

_chosen: str | None = None


def check(lang: str) -> str:
    """`lang` normalised ("KO" → "ko"); a friendly error for a language meshkit has no edition in."""
    chosen = lang.strip().lower()
    if chosen not in LANGS:
        raise ValueError(f"unknown language {lang!r}; meshkit's labs come in {', '.join(LANGS)}")
    return chosen


def folder_lang(folder: Path | None = None) -> str | None:
    """"ko" when `folder` (default: the working directory) is an edition folder such as labs/ko."""
    here = (folder or Path.cwd()).resolve()
    if here.name in LANGS and here.parent.name in EDITION_PARENTS:
        return here.name
    return None


def resolve(lang: str | None = None) -> str:
    """The language to speak now (see the module docstring for the order)."""
    if lang:
        return check(lang)
    if _chosen:
        return _chosen
    from_folder = folder_lang()
    if from_folder:
        return from_folder
    return check(os.environ.get("MESHKIT_LANG") or EN)


def use(lang: str | None) -> str:
    """Make `lang` (resolved as above) the session's language, so widgets follow the lab's choice."""
    global _chosen
    _chosen = None
    _chosen = resolve(lang)
    return _chosen


def current() -> str:
    return resolve()


def key(text: str) -> str:
    """The translation key of an English text: 8 hex digits of its SHA-1."""
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def hangul_share(text: str) -> float:
    """The share of Hangul among the letters of `text` (code spans and fences left out)."""
    prose = re.sub(r"```.*?```|`[^`\n]*`", " ", text, flags=re.S)
    prose = re.sub(r"https?://\S+", " ", prose)
    letters = [ch for ch in prose if ch.isalpha()]
    hangul = [ch for ch in letters if "\uac00" <= ch <= "\ud7a3" or "\u3130" <= ch <= "\u318f"]
    return len(hangul) / len(letters) if letters else 1.0


def escape(text: str) -> str:
    """A plain text in template form: its braces doubled, so only `{0}` holes are holes."""
    return text.replace("{", "{{").replace("}", "}}")


def unescape(template: str) -> str:
    return template.replace("{{", "{").replace("}}", "}")


def is_template(english: str) -> bool:
    """True for an English text with `{0}`-style holes (an f-string message from a check)."""
    return any(field is not None for _, field, _, _ in string.Formatter().parse(english))


def template_regex(english: str, anchored: bool = True) -> re.Pattern[str]:
    """A regex that matches the texts `english` (a `{0} … {1}` template) formats to."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(english):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append("(.+?)")
    body = "".join(parts)
    return re.compile(f"^{body}$" if anchored else body, re.S)


class Table:
    """English → Korean for one lab (or the session's own texts), with templates and fragments.

    `entries` maps an English text in template form (braces doubled; `{0}` holes for an f-string's
    values) to its
    Korean twin. `translate` finds, in order: the exact text; a template whose holes match (the
    holes' values are translated too); else it replaces every known fragment inside the text
    (for messages joined from several pieces)."""

    def __init__(self, entries: dict[str, str]) -> None:
        self.exact = {unescape(en): ko for en, ko in entries.items() if not is_template(en)}
        templates = sorted(((en, ko) for en, ko in entries.items() if is_template(en)), key=lambda t: -len(t[0]))
        self.templates = [(template_regex(en), ko) for en, ko in templates]
        # inside a longer text a template can only be found when literal text closes both ends
        self.inner = [(template_regex(en, anchored=False), ko) for en, ko in templates
                      if not en.startswith("{") and not en.endswith("}")]
        self.fragments = sorted(self.exact.items(), key=lambda item: -len(item[0]))

    def translate(self, text: str) -> str | None:
        """The Korean twin of `text`, or None when the table has none."""
        if text in self.exact:
            return self.exact[text]
        for regex, ko in self.templates:
            match = regex.match(text)
            if match:
                return ko.format(*(self.translate(value) or value for value in match.groups()))
        pieced = self._pieces(text)
        return pieced if pieced != text else None

    def _pieces(self, text: str) -> str:
        out = text
        for regex, ko in self.inner:
            out = regex.sub(lambda m, ko=ko: ko.format(*m.groups()), out)
        for en, ko in self.fragments:
            if len(en) > 6 and en in out:
                out = out.replace(en, ko)
        return out
