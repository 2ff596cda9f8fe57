"""Korean first; English on request (``?lang=en`` once, then remembered in a cookie).

Templates write the Korean text and wrap it: ``{{ _("코일 이력") }}``. The Korean is the key;
:data:`ENGLISH` gives the English. A label without an entry shows in Korean in both modes,
so a missing translation never breaks a page.
"""

from __future__ import annotations

LANGUAGES = ("ko", "en")
COOKIE = "ccl_lang"

ENGLISH: dict[str, str] = {
    # navigation and layout
    "실시간 모니터링": "Live monitoring",
    "코일 이력": "Coil history",
    "통계": "Statistics",
    "AI 모델": "AI models",
    "시스템": "System",
    "관리": "Administration",
    "CCL 표면 검사": "CCL surface inspection",
    "로그아웃": "Log out",
    "로그인": "Log in",
    "아이디": "User id",
    "비밀번호": "Password",
    "한국어": "Korean",
    "English": "English",
    "역할": "Role",
    "관리자": "Administrator",
    "운영자": "Operator",
    "조회자": "Viewer",
    "준비 중입니다.": "Coming soon.",
    # messages
    "아이디 또는 비밀번호가 올바르지 않습니다.": "Wrong user id or password.",
    "로그인 시도가 너무 많아 계정이 잠시 잠겼습니다. 나중에 다시 시도하세요.":
        "Too many failed attempts: the account is locked for a while. Try again later.",
    "사용이 중지된 계정입니다.": "This account is disabled.",
    "로그아웃되었습니다.": "You have been logged out.",
    "세션이 만료되었습니다. 다시 로그인하세요.": "Your session has expired. Please log in again.",
    "권한이 없습니다.": "You are not allowed to do this.",
    "요청을 확인할 수 없습니다 (CSRF). 페이지를 새로 고친 뒤 다시 시도하세요.":
        "The request could not be verified (CSRF). Reload the page and try again.",
    "페이지를 찾을 수 없습니다.": "Page not found.",
    "허용되지 않는 요청 방식입니다.": "Method not allowed.",
    "데이터베이스에 연결할 수 없습니다. 잠시 후 다시 시도하세요.":
        "The database cannot be reached. Try again shortly.",
    "내부 오류가 발생했습니다.": "An internal error occurred.",
    "홈으로": "Home",
    # system page
    "서비스": "Services",
    "서비스 ID": "Service id",
    "상태": "State",
    "PID": "PID",
    "가동 시간": "Uptime",
    "재시작 횟수": "Restarts",
    "마지막 종료": "Last exit",
    "헬스": "Health",
    "시작": "Start",
    "중지": "Stop",
    "재시작": "Restart",
    "로그": "Log",
    "로그 보기": "Show log",
    "실시간 로그": "Live log",
    "오케스트레이터에 연결할 수 없습니다": "The orchestrator cannot be reached",
    "오케스트레이터 로그": "Orchestrator log",
    "알람": "Alerts",
    "진행 중인 알람": "Open alerts",
    "지난 알람": "Past alerts",
    "규칙": "Rule",
    "대상": "Subject",
    "심각도": "Severity",
    "메시지": "Message",
    "발생": "Raised",
    "해제": "Cleared",
    "확인": "Acknowledge",
    "확인됨": "Acknowledged",
    "확인자": "Acknowledged by",
    "없음": "None",
    "정말 실행하시겠습니까?": "Do you really want to do this?",
    "호스트": "Host",
    "CPU 사용률": "CPU in use",
    "부하 평균 (1·5·15분)": "Load average (1 · 5 · 15 min)",
    "메모리 사용": "Memory in use",
    "네트워크 수신": "Network in",
    "네트워크 송신": "Network out",
    "디스크": "Disk",
    "경로": "Path",
    "사용량": "Used",
    "여유": "Free",
    "전체": "Total",
    "사용률": "In use",
    "이미지 저장소": "Image store",
    "MES 저널": "MES journal",
    "데이터베이스": "Database",
    # admin
    "사용자": "Users",
    "감사 로그": "Audit log",
    "설정": "Settings",
    "사용자 추가": "Add user",
    "표시 이름": "Display name",
    "사용 중지": "Disabled",
    "사용": "Enabled",
    "저장": "Save",
    "비밀번호 재설정": "Reset password",
    "마지막 로그인": "Last login",
    "생성일": "Created",
    "새 비밀번호 (한 번만 표시됩니다)": "New password (shown only once)",
    "시각": "Time",
    "행위자": "Actor",
    "동작": "Action",
    "결과": "Result",
    "세부 정보": "Details",
    "주소": "Address",
    "부터": "From",
    "까지": "To",
    "검색": "Search",
    "이전": "Previous",
    "다음": "Next",
    "결함 유형 (한 줄에 하나)": "Defect types (one a line)",
    "심각도 신뢰도 기준": "Confidence thresholds for severity",
    "검토 기준 (이 신뢰도 미만은 검토 필요)": "Review threshold (below this confidence a defect needs review)",
    "저장되었습니다.": "Saved.",
    "페이지": "Page",
}


def pick_language(param: str | None, cookie: str | None) -> str:
    for candidate in (param, cookie):
        if candidate in LANGUAGES:
            return candidate
    return "ko"


def translator(language: str):
    if language == "en":
        return lambda text: ENGLISH.get(text, text)
    return lambda text: text
