"""The lab session's own words (start, check, hint, solution, instructor buttons) in each language.

`say(lang, english, *values)` formats the English template, or its twin in `lang`. Every
`say(...)` in meshkit/lab must have its twin here (tests/unit/test_i18n.py reads them from the source).
"""

from __future__ import annotations

KO: dict[str, str] = {
    # outcomes, as a check's badge shows them
    "done": "완료",
    "not yet": "아직",
    "wrong": "틀림",
    "rejected": "거부됨",
    "environment problem": "환경 문제",
    "not on this runtime": "이 런타임에서는 안 됨",
    # lab.start()
    "Lab {0} is ready": "랩 {0} 준비 완료",
    "{0} — about {1} minutes, mode: {2}": "{0} — 약 {1}분, 모드: {2}",
    "mesh: {0} pods, {1} ({2} runtime)": "메시: 파드 {0}개, {1} ({2} 런타임)",
    "  on {0}: {1}": "  {0}에서: {1}",
    "{0} runs on {1} only: {2}": "{0}은(는) {1}에서만 돌아갑니다: {2}",
    "runs on {0} only: {1}": "{0}에서만 돌아갑니다: {1}",
    "skip it here": "여기서는 건너뛰세요",
    " or ": " 또는 ",
    "all sidecars SYNCED": "모든 사이드카 SYNCED",
    "sidecars not yet SYNCED: {0}": "아직 SYNCED가 아닌 사이드카: {0}",
    "{0} sidecars not connected to the boss: {1}": "두목과 연결되지 않은 사이드카 {0}개: {1}",
    "the boss is stopped: the sidecars keep their last config (mesh.start_boss())":
        "두목이 멈춰 있습니다: 사이드카는 마지막 설정을 그대로 들고 있습니다 (mesh.start_boss())",
    # lab.check()
    "no mesh answers; run `meshkit up` (or `meshkit doctor`)":
        "응답하는 메시가 없습니다. `meshkit up`을 실행하세요 (또는 `meshkit doctor`)",
    "{0} — try `meshkit doctor`": "{0} — `meshkit doctor`로 확인해 보세요",
    "Envoy rejected the last config you pushed: {0}": "마지막으로 내려보낸 설정을 Envoy가 거부했습니다(NACK): {0}",
    # lab.hint() and lab.solution()
    "Hints are locked": "힌트가 잠겨 있습니다",
    "Your instructor unlocks hints during the workshop (`meshkit hints unlock`). Try the prediction prompts meanwhile.":
        "워크숍 중에는 강사가 힌트를 열어 줍니다 (`meshkit hints unlock`). 그동안 예측 질문부터 풀어 보세요.",
    "Hint {0}/{1} for {2}": "{2} 힌트 {0}/{1}",
    " (run again for a stronger hint)": " (다시 실행하면 더 구체적인 힌트가 나옵니다)",
    "Solution for {0}: {1}": "{0} 정답: {1}",
    " (applied)": " (적용함)",
    " (not applied: runs on {0} only)": " (적용 안 함: {0}에서만 돌아갑니다)",
    # instructor mode
    "Next step": "다음 단계",
    "Autopilot: {0}": "오토파일럿: {0}",
    "autopilot: every exercise of this lab is done": "오토파일럿: 이 랩의 연습문제를 모두 마쳤습니다",
    "Fault buttons": "장애 버튼",
    "stop the boss": "두목 멈추기",
    "restore the boss": "두목 되살리기",
    "2 s delay on ratings": "ratings에 2초 지연",
    "push a bad config": "잘못된 설정 푸시",
    "clear faults": "장애 모두 치우기",
    "the boss is down: sidecars keep their last orders (try a request)":
        "두목이 쓰러졌습니다: 사이드카는 마지막 명령을 지킵니다 (요청을 보내 보세요)",
    "the boss is back: sidecars reconnect and resync": "두목이 돌아왔습니다: 사이드카가 다시 연결해서 재동기화합니다",
    "every call to ratings now waits 2 s (VirtualService instructor-delay)":
        "이제 ratings로 가는 모든 호출이 2초 기다립니다 (VirtualService instructor-delay)",
    "unexpected: Envoy accepted the bad listener": "뜻밖입니다: Envoy가 잘못된 Listener를 받아들였습니다",
    "faults cleared": "장애를 모두 치웠습니다",
    # lab.progress()
    "LAB": "랩",
    "EXERCISE": "연습문제",
    "OUTCOME": "결과",
    "WHEN": "시각",
    "solution shown": "정답 봄",
}

TABLES = {"ko": KO}


def say(lang: str, english: str, *values: object) -> str:
    """`english` (a `{0}` template) in `lang`, filled with `values`."""
    template = TABLES.get(lang, {}).get(english, english)
    return template.format(*values) if values else template
