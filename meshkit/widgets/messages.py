"""The widgets' own words (button labels, status lines) in the lab's language.

`t(text)` gives the Korean twin of an English label or status line when the session speaks Korean
(`meshkit.i18n.current()`: the lab's `lang=`, the notebook's folder, or `MESHKIT_LANG`), else the
text itself. Status lines go through `status_html`, so f-string lines are listed here as `{0}`
templates; tests/unit/test_i18n.py checks that every literal the widgets pass has its twin.
"""

from __future__ import annotations

import functools

from .. import i18n

KO: dict[str, str] = {
    # buttons and fields
    "Apply": "적용",
    "show generated xDS": "만들어질 xDS 보기",
    "header": "헤더",
    "match": "매칭",
    "value": "값",
    "send to": "보낼 곳",
    "others to": "나머지는",
    "delay s": "지연(초)",
    "abort HTTP": "중단 HTTP",
    "% of reqs": "요청 비율 %",
    "timeout s": "타임아웃(초)",
    "retries": "재시도",
    "per try s": "시도당(초)",
    "paste or write YAML here": "여기에 YAML을 붙여 넣거나 쓰세요",
    "diff on": "비교할 파드",
    "Diff against live": "지금 설정과 비교",
    "Redraw": "다시 그리기",
    "expand 15006 chains": "15006 체인 펼치기",
    "req/s": "요청/초",
    "Start": "시작",
    "Stop": "멈춤",
    "Clear": "지우기",
    "Replay": "되돌려 적용",
    "Replay push {0}": "푸시 {0} 되돌려 적용",
    "Send again": "다시 보내기",
    # status lines
    "pushing… (waiting for every proxy to ACK)": "푸시하는 중… (모든 프록시의 ACK를 기다림)",
    "cannot preview: {0}": "미리 볼 수 없습니다: {0}",
    "waiting for the mesh: {0}": "메시를 기다리는 중: {0}",
    "could not read the mesh: {0}": "메시를 읽을 수 없습니다: {0}",
    "no diff of pushes {0} and {1}: {2}": "푸시 {0}와(과) {1}을(를) 비교할 수 없습니다: {2}",
    "select a second push to compare": "비교할 두 번째 푸시를 고르세요",
    "replaying push {0} …": "푸시 {0}을(를) 되돌려 적용하는 중 …",
    "replay of push {0} failed: {1}": "푸시 {0} 되돌려 적용 실패: {1}",
    "push {0}: replayed push {1}, {2} proxies ACKed": "푸시 {0}: 푸시 {1}을(를) 되돌려 적용, 프록시 {2}개가 ACK",
    "sending GET {0} from {1} …": "{1}에서 GET {0} 보내는 중 …",
    "Each proxy keeps serving its last good config. Fix the resource, or `mesh.revert()`.":
        "프록시는 저마다 마지막 올바른 설정으로 계속 일합니다. 리소스를 고치거나 `mesh.revert()`를 쓰세요.",
    # graph notes (the line under a picture; pieces joined by "; ")
    "xDS streams: green SYNCED, orange STALE, red ERROR, grey dotted NOT SENT/disconnected, bold: just SENT "
    "(blue), ACK (green), NACK (red). Calls: grey dashed = configured, no traffic yet; green ok, red 5xx":
        "xDS 스트림: 초록 SYNCED, 주황 STALE, 빨강 ERROR, 회색 점선 NOT SENT/연결 끊김, 굵게: 방금 SENT(파랑), "
        "ACK(초록), NACK(빨강). 호출: 회색 파선 = 설정만 있고 아직 트래픽 없음, 초록 정상, 빨강 5xx",
    "removed since the last picture: {0}": "지난 그림 이후 사라짐: {0}",
    "{0} changed since the last version": "지난 버전 이후 {0}개가 바뀜",
    "<i>Select two pushes (Ctrl/Shift-click) to see what changed; one to replay it.</i>":
        "<i>푸시 두 개를 고르면(Ctrl/Shift-클릭) 무엇이 바뀌었는지, 하나를 고르면 되돌려 적용할 수 있습니다.</i>",
}

TABLES = {i18n.KO: KO}


@functools.lru_cache(maxsize=4)
def _table(lang: str) -> i18n.Table:
    return i18n.Table({english: korean for english, korean in TABLES.get(lang, {}).items()})


def note(text: str) -> str:
    """A graph's note in the current language: known notes first (a legend may hold "; " itself),
    then piece by piece (pieces such as "removed since the last picture: …" are joined by "; ")."""
    return "; ".join(t(piece) for piece in t(text).split("; ")) if text else text


def t(text: str) -> str:
    """`text` in the current language (itself when there is no twin)."""
    lang = i18n.current()
    if lang == i18n.EN or not text:
        return text
    return _table(lang).translate(text) or text
