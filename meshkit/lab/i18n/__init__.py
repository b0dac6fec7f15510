"""The labs' other editions: every English text of a lab has its twin in `i18n/<lang>/<lab>.yaml`.

One source, two editions. English lives where it always did (the notebooks in solutions/, the lab
specs in catalog/); a translation file holds only the other language, keyed so it cannot drift:

    cells:                       # markdown cells, by the cell's id and a hash of its English
      fe0d0e0d@3fa2c19d: |
        # 랩 04 — RDS ...
    texts:                       # the spec's texts and the checks' verdicts, by a hash of the English
      9b1e44a0: 모바일 사용자를 reviews-v2로 보내기
      c0ffee12: "경로 설정 9080에서 {0}의 virtual host가 사라졌습니다"   # {0}: the f-string's hole

When an English text changes, its hash changes: the old translation stops matching and
`missing()` (and the tests) name the text that needs one. Code cells are never translated: the
build copies them, so both editions run the very same code.

    python -m meshkit.lab.i18n todo [LAB]    # what still lacks a Korean twin, with the English
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import yaml

from ... import i18n
from ..catalog import load_spec, names
from ..spec import LabSpec

FOLDER = Path(__file__).resolve().parent
TRANSLATED = ("ko",)  # the languages with an edition besides English


def spec_texts(spec: LabSpec) -> list[str]:
    """Every learner-facing text of a lab spec (title, objectives, notes, exercise titles, hints), in
    template form (braces doubled) like the verdict messages."""
    texts = [spec.title, *spec.objectives, *spec.notes, *(note for _, note in spec.runtime_notes)]
    for exercise in spec.exercises:
        texts += [exercise.title, *exercise.hints]
        if exercise.elsewhere:
            texts.append(exercise.elsewhere)
    return _unique([i18n.escape(text) for text in texts])


def check_messages(module_name: str) -> list[str]:
    """The verdict messages a catalog module's checks can give, as `{0}` templates (read from its
    source: f-string holes become `{0}`, `{1}` …; a message joined from pieces yields its pieces)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found: list[str] = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for call in ast.walk(function):
            message = _verdict_message(call)
            if message is None:
                continue
            text = _template(message)
            if text is not None:
                found.append(text)
            else:  # joined at run time: every sentence in the function may be one of its pieces
                found += [t for node in ast.walk(function) if (t := _template(node)) is not None
                          and _is_sentence(t) and not _is_docstring(function, node)]
    return _unique(found)


def _verdict_message(node: ast.AST) -> ast.expr | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "Verdict":
        return node.args[0] if node.args else None
    if isinstance(func, ast.Name) and func.id == "Verdict" and len(node.args) > 1:
        return node.args[1]
    return None


def _template(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return i18n.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts, hole = [], 0
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(i18n.escape(str(value.value)))
            else:
                parts.append(f"{{{hole}}}")
                hole += 1
        return "".join(parts)
    return None


def _is_sentence(text: str) -> bool:
    """Words a learner reads (not a separator such as "; " or a name such as "reviews-v1")."""
    return " " in text.strip() and sum(ch.isalpha() for ch in text) >= 3


def _is_docstring(function: ast.AST, node: ast.AST) -> bool:
    body = getattr(function, "body", [])
    return bool(body) and isinstance(body[0], ast.Expr) and body[0].value is node


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t and t.strip()))


def module_of(lab: str) -> str:
    """The catalog module that defines `lab` ("04-rds" → meshkit.lab.catalog.lab04_rds)."""
    number, _, slug = load_spec(lab).name.partition("-")
    return f"meshkit.lab.catalog.lab{number}_{slug.replace('-', '_')}"


def lab_texts(lab: str) -> list[str]:
    """Everything of a lab's spec module a learner reads: spec texts, then verdict messages."""
    return _unique(spec_texts(load_spec(lab)) + check_messages(module_of(lab)))


@functools.lru_cache(maxsize=64)
def load(lang: str, lab: str) -> dict:
    """The translation file of `lab` in `lang` ({"cells": {}, "texts": {}} when there is none)."""
    path = FOLDER / lang / f"{load_spec(lab).name}.yaml"
    # BaseLoader: every key stays text (a hash such as 02621777 is not an octal number)
    data = yaml.load(path.read_text(), Loader=yaml.BaseLoader) if path.exists() else None
    data = data or {}
    return {"cells": dict(data.get("cells") or {}), "texts": {str(k): v for k, v in (data.get("texts") or {}).items()}}


@dataclass(frozen=True)
class Missing:
    """One English text without a translation: where it is, its key, the English, and the old
    translation when the English changed since it was translated."""

    lab: str
    where: str  # "cell fe0d0e0d" or "text"
    key: str
    english: str
    stale: str = ""

    def __str__(self) -> str:
        state = "changed since it was translated" if self.stale else "has no translation"
        return f"{self.lab}: {self.where} {self.key} {state}: {self.english[:80]!r}"


class Texts:
    """One lab's texts in one language: `t(english)` gives the twin, English itself as the fallback."""

    def __init__(self, lab: str, lang: str) -> None:
        self.lang = i18n.check(lang)
        self.lab = load_spec(lab).name if self.lang != i18n.EN else lab  # English needs no table
        english = lab_texts(self.lab) if self.lang != i18n.EN else []
        texts = load(self.lang, self.lab)["texts"] if self.lang != i18n.EN else {}
        self.table = i18n.Table({en: texts[i18n.key(en)] for en in english if i18n.key(en) in texts})

    def t(self, english: str) -> str:
        if self.lang == i18n.EN or not english:
            return english
        return self.table.translate(english) or english


def cell_key(cell: dict) -> str:
    return f"{cell.get('id', '')}@{i18n.key(cell['source'])}"


def translate_cells(cells: list, lab: str, lang: str) -> list[Missing]:
    """Replace each markdown cell's source with its `lang` twin, in place; returns what is missing."""
    known = load(lang, lab)["cells"]
    by_id = {k.split("@", 1)[0]: v for k, v in known.items()}
    missing = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        twin = known.get(cell_key(cell))
        if twin is None:
            missing.append(Missing(lab, f"cell {cell.get('id', '?')}", cell_key(cell), cell["source"],
                                   stale=by_id.get(cell.get("id", ""), "")))
            continue
        cell["source"] = twin.rstrip("\n")
    return missing


def missing(lab: str, lang: str, cells: list | None = None) -> list[Missing]:
    """Every text of `lab` (spec, verdicts and, given the notebook's cells, markdown) lacking a twin."""
    texts = load(lang, lab)["texts"]
    found = [Missing(lab, "text", i18n.key(en), en) for en in lab_texts(lab) if i18n.key(en) not in texts]
    if cells is not None:
        import copy

        found += translate_cells(copy.deepcopy(cells), lab, lang)
    return found


def orphans(lab: str, lang: str, cells: list) -> list[str]:
    """Translation keys that no longer match any English text (left over after the English changed)."""
    data = load(lang, lab)
    live_texts = {i18n.key(en) for en in lab_texts(lab)}
    live_cells = {cell_key(c) for c in cells if c["cell_type"] == "markdown"}
    return sorted([k for k in data["texts"] if k not in live_texts] + [k for k in data["cells"] if k not in live_cells])


__all__ = ["TRANSLATED", "Missing", "Texts", "lab_texts", "load", "missing", "names", "orphans", "translate_cells"]
