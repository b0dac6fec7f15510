"""The Korean edition: every lab has one, nothing lacks a translation, code cells are the English
ones, the prose is Korean, and the session, the CLI and the widgets speak the chosen language."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from meshkit import i18n
from meshkit.cli import build_parser
from meshkit.lab import Lab, build, modes
from meshkit.lab.catalog import load_spec, names
from meshkit.lab.i18n import Texts, check_messages, load, missing, module_of, orphans
from meshkit.lab.i18n.ui import KO as UI_KO
from meshkit.lab.launch import lab_command

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EDITIONS = [(folder, path.name) for folder in ("solutions", "labs") for path in SOLUTIONS]
MIN_HANGUL = 0.5


@pytest.fixture(autouse=True)
def _session_language_restored(monkeypatch):
    """A Lab made here sets the process's language; the other test modules expect English."""
    monkeypatch.setattr(i18n, "_chosen", None)


def cells(path: Path) -> list:
    return nbformat.read(path, as_version=4).cells


def test_every_lab_has_a_notebook_and_every_notebook_a_lab():
    assert sorted(p.stem for p in SOLUTIONS) == names()


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_nothing_lacks_its_korean_twin(path: Path):
    todo = missing(path.stem, "ko", cells(path))
    assert not todo, "\n".join(map(str, todo)) + "\n(`python -m meshkit.lab.i18n todo` lists them with the English)"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_translation_is_left_over(path: Path):
    assert orphans(path.stem, "ko", cells(path)) == []


@pytest.mark.parametrize("folder,name", EDITIONS, ids=lambda v: str(v))
def test_korean_notebook_exists_with_the_english_code_cells(folder: str, name: str):
    english, korean = ROOT / folder / name, ROOT / folder / "ko" / name
    assert korean.exists(), f"{folder}/{name} has no Korean edition: run `python -m meshkit.lab.build`"
    en, ko = cells(english), cells(korean)
    assert [(c.id, c.cell_type) for c in en] == [(c.id, c.cell_type) for c in ko]
    assert [c.source for c in en if c.cell_type == "code"] == [c.source for c in ko if c.cell_type == "code"]


@pytest.mark.parametrize("folder,name", EDITIONS, ids=lambda v: str(v))
def test_korean_markdown_is_mostly_hangul(folder: str, name: str):
    markdown = [c.source for c in cells(ROOT / folder / "ko" / name) if c.cell_type == "markdown"]
    share = i18n.hangul_share("\n".join(markdown))
    assert share >= MIN_HANGUL, f"{folder}/ko/{name}: only {share:.0%} of the markdown's letters are Hangul"
    english = [s for s in markdown if i18n.hangul_share(s) == 0 and sum(ch.isalpha() for ch in s) > 12]
    assert not english, f"cells with no Korean at all: {english}"


def test_build_check_covers_both_editions():
    assert build.drift() == []
    assert build.untranslated() == []


@pytest.mark.parametrize("lab", names())
def test_korean_lab_texts_are_korean(lab: str):
    texts = load("ko", lab)["texts"]
    english = [ko for ko in texts.values() if sum(ch.isalpha() for ch in ko) > 12 and i18n.hangul_share(ko) == 0]
    assert not english, english


@pytest.mark.parametrize("lab", names())
def test_korean_templates_keep_every_hole(lab: str):
    """A Korean verdict fills the same holes as the English f-string, so no value is lost."""
    texts = load("ko", lab)["texts"]
    for english in check_messages(module_of(lab)):
        if i18n.is_template(english) and i18n.key(english) in texts:
            holes = english.count("{") - 2 * english.count("{{")
            ko = texts[i18n.key(english)]
            assert ko.format(*range(holes)) is not None, (english, ko)
            assert all(f"{{{n}}}" in ko for n in range(holes)), (english, ko)


def test_table_finds_exact_template_and_joined_texts():
    table = i18n.Table({
        "set `x`": "`x`를 설정하세요",
        "lost the virtual hosts for {0}: start again": "{0}의 virtual host가 사라졌습니다",
        "`a` is wrong": "`a`가 틀렸습니다", "`b` is wrong": "`b`가 틀렸습니다",
        "use `{{prefix: /}}`": "`{prefix: /}`를 쓰세요",
    })
    assert table.translate("set `x`") == "`x`를 설정하세요"
    assert table.translate("lost the virtual hosts for details, ratings: start again") == \
        "details, ratings의 virtual host가 사라졌습니다"
    assert table.translate("`a` is wrong; `b` is wrong") == "`a`가 틀렸습니다; `b`가 틀렸습니다"
    assert table.translate("use `{prefix: /}`") == "`{prefix: /}`를 쓰세요"
    assert table.translate("something else") is None


@pytest.mark.parametrize("lab,english,korean", [
    ("04", "route configuration 9080 lost the virtual hosts for details, ratings",
     "라우트 설정 9080에서 details, ratings의 virtual host가 사라졌습니다"),
    ("06", "the HTTP outsider is still refused (502)", "HTTP 외부 서버는 아직 거절당합니다 (502)"),
    ("03", "`chain_9080`: which chain's filter_chain_match has destination_port 9080? (read `filter_chains[i].name` "
           "and `.filter_chain_match` of virtualInbound on reviews-v1)",
     "`chain_9080`: filter_chain_match에 destination_port 9080이 있는 체인은 어느 것인가요? (reviews-v1의 "
     "virtualInbound에서 `filter_chains[i].name`과 `.filter_chain_match`를 읽어 보세요)"),
    ("08", "reviews answers from v2, v3: the task's VirtualService sends everything to v1 (mesh.pc.routes(...))",
     "reviews에 답한 버전: v2, v3: 과제의 VirtualService는 모든 요청을 v1으로 보냅니다 (mesh.pc.routes(...))"),
])
def test_verdicts_joined_at_run_time_are_korean(lab: str, english: str, korean: str):
    assert Texts(lab, "ko").t(english) == korean


def test_messages_come_from_the_checks_source():
    messages = check_messages("meshkit.lab.catalog.lab04_rds")
    assert "route configuration 9080 lost the virtual hosts for {0}" in messages
    assert "a request to a pod IP (a host no virtual host names) still passes through" in messages


def test_lab_speaks_the_language_it_is_given(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("MESHKIT_LANG", raising=False)
    monkeypatch.chdir(tmp_path)
    korean = Lab(load_spec("04-rds"), home=str(tmp_path), lang="ko")
    hint = korean.hint("ex1")
    assert i18n.hangul_share(hint.title) > 0.5 and i18n.hangul_share(hint.body) > 0.3
    english = Lab(load_spec("04-rds"), home=str(tmp_path), lang="en")
    assert english.hint("ex1").body == load_spec("04-rds").exercise("ex1").hints[0]
    for english_text, korean_text in [(english.t(english.spec.title), korean.t(korean.spec.title))]:
        assert english_text != korean_text and i18n.hangul_share(korean_text) > 0


def test_language_comes_from_the_notebook_folder_then_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(i18n, "_chosen", None)
    monkeypatch.delenv("MESHKIT_LANG", raising=False)
    edition = tmp_path / "labs" / "ko"
    edition.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert i18n.resolve() == "en"
    monkeypatch.setenv("MESHKIT_LANG", "ko")
    assert i18n.resolve() == "ko"
    monkeypatch.setenv("MESHKIT_LANG", "en")
    monkeypatch.chdir(edition)
    assert i18n.resolve() == "ko"  # the notebook's own folder is the most specific choice
    assert i18n.resolve("en") == "en"
    with pytest.raises(ValueError, match="ko"):
        i18n.resolve("fr")


def test_meshkit_lab_lang_ko_opens_the_korean_labs():
    args = build_parser().parse_args(["lab", "--lang", "ko"])
    assert args.lang == "ko"
    argv, folder, env = lab_command(modes.resolve(args.mode), args.lang)
    assert folder == ROOT / "labs" / "ko" and f"--notebook-dir={ROOT / 'labs' / 'ko'}" in argv
    assert argv[1:4] == ["-m", "jupyter", "lab"] and env["MESHKIT_LANG"] == "ko"
    argv, folder, env = lab_command(modes.INSTRUCTOR, "ko")
    assert folder == ROOT / "solutions" / "ko" and env["MESHKIT_MODE"] == "instructor"
    _, folder, env = lab_command(modes.SELF_STUDY, "en")
    assert folder == ROOT / "labs" and env["MESHKIT_LANG"] == "en"


def _literal_calls(path: Path, function: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == function:
            args = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            found += [a.value for a in args[:1]]
    return found


def test_every_session_sentence_has_its_korean_twin():
    said = [text for path in (ROOT / "meshkit" / "lab").glob("*.py") for text in _literal_calls(path, "say")]
    assert said, "the session says nothing?"
    assert [text for text in said if text not in UI_KO] == []


def test_korean_texts_of_a_lab_fall_back_to_english_only_when_untranslated():
    texts = Texts("04-rds", "ko")
    assert texts.t("a sentence nobody wrote") == "a sentence nobody wrote"
    assert i18n.hangul_share(texts.t("RDS: routes, virtual hosts and domains")) > 0


def _widget_literals() -> list[str]:
    """Every label and status line the widgets pass to `t(...)` or `status_html(...)`, as templates."""
    from meshkit.lab.i18n import _template

    found = []
    for path in (ROOT / "meshkit" / "widgets").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("t", "status_html") and node.args:
                arg = node.args[0]
                parts = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
                found += [text for part in parts if (text := _template(part)) and any(c.isalpha() for c in text)]
    return found


def test_every_widget_label_has_its_korean_twin():
    from meshkit.widgets.messages import KO

    literals = _widget_literals()
    assert len(literals) > 20, literals
    assert [text for text in literals if text not in KO] == []


def test_widgets_speak_the_session_language(monkeypatch):
    from meshkit.widgets.base import status_html
    from meshkit.widgets.messages import t

    monkeypatch.setattr(i18n, "_chosen", "ko")
    assert t("Apply") == "적용" and t("Replay push 7") == "푸시 7 되돌려 적용"
    assert "메시를 기다리는 중: timeout" in status_html("waiting for the mesh: timeout", "busy")
    from meshkit.inspect.mesh_graph import LEGEND
    from meshkit.widgets.messages import note

    assert i18n.hangul_share(note(LEGEND + "; removed since the last picture: reviews-v3")) > 0.5
    assert note(LEGEND).startswith("xDS 스트림")
    assert note("3 changed since the last version") == "지난 버전 이후 3개가 바뀜"
    monkeypatch.setattr(i18n, "_chosen", "en")
    assert t("Apply") == "Apply"


def test_instructor_buttons_and_messages_have_korean_twins():
    from meshkit.lab.instructor import Faults

    path = ROOT / "meshkit" / "lab" / "instructor.py"
    returned = [node.value.value for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)]
    assert len(returned) >= 5
    names = list(Faults(mesh=None).actions)  # type: ignore[arg-type]
    assert [text for text in returned + names if text not in UI_KO] == []


def test_progress_table_speaks_korean(tmp_path: Path, monkeypatch):
    from meshkit.lab import progress

    monkeypatch.chdir(tmp_path)
    progress.record(tmp_path, "04-rds", "ex1", "not yet")
    progress.record(tmp_path, "04-rds", "ex2", "done")
    table = Lab(load_spec("04-rds"), home=str(tmp_path), lang="ko").progress()
    assert list(table.columns) == ["랩", "연습문제", "결과", "시각"]
    assert list(table["결과"]) == ["아직", "완료"]


@pytest.mark.parametrize("make_args,env,expected", [
    (["LANG=ko"], {"LANG": "C.UTF-8"}, "--lang=ko"),
    ([], {"LANG": "ko_KR.UTF-8"}, None),  # the shell's locale is not a choice of edition
    ([], {"LANG": "C.UTF-8", "MESHKIT_LANG": "ko"}, "--lang=ko"),
])
def test_make_lab_lang_picks_the_edition(make_args: list[str], env: dict, expected: str | None):
    import os
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("no make on this machine")
    clean = {k: v for k, v in os.environ.items() if k not in ("LANG", "MESHKIT_LANG")}
    out = subprocess.run(["make", "-n", "lab", *make_args], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    line = next(row for row in out.splitlines() if "meshkit lab" in row)
    assert (expected in line) if expected else ("--lang" not in line), line
