"""Shared bits of the data pages (dashboard, 코일 이력, 통계, AI 모델): formatting for
templates, input checks, and their English labels (merged into i18n.ENGLISH on import)."""

from __future__ import annotations

import datetime
import re

from ccl.adapters.web.ui import i18n
from ccl.adapters.web.errors import HTTPError
from ccl.domain.plant_time import plant_text

#: The plant's clock: "today" and the days of the filters are days in Korea.
PLANT_TZ = "Asia/Seoul"
#: Coil numbers as the ingestion API allows them (they become parts of file names there).
COIL = re.compile(r"^[A-Za-z0-9-]{1,20}$")


def check_coil(coil: str) -> str:
    if not COIL.match(coil or ""):
        raise HTTPError(404, "no such coil", "a coil number is 1-20 of A-Z a-z 0-9 -")
    return coil


#: An ISO 8601 timestamp (as the queries return them) in plant time; '' for None.
when = plant_text


def num(value, digits: int = 0) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def parse_date(text: str | None, name: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise HTTPError(400, f"bad {name}", f"expected a date YYYY-MM-DD, got {text!r}") from None


FORMAT = {"when": when, "num": num}

SEVERITY_LABEL = {"low": "낮음", "medium": "보통", "high": "높음", "critical": "치명"}

#: Coil tracking's words (docs/tracking.md), for the templates: ``**TRACKING_LABELS``.
TRACKING_LABELS = {
    "completeness_label": {"complete": "완전", "partial": "일부 누락", "unknown": "검사율 미상", "running": "진행 중",
                           "none": "추적 데이터 없음"},
    "completeness_help": {
        "complete": "스케줄, 앞·뒤 용접점, 연속된 속도, 절단이 모두 있고 모든 카메라가 코일 전체를 검사했습니다.",
        "partial": "스케줄, 용접점, 속도 또는 절단 중 빠진 것이 있거나 어떤 카메라가 코일 일부를 검사하지 못했습니다.",
        "unknown": "하트비트가 없는 카메라가 있어 검사한 비율을 알 수 없습니다. 결함 없음과 다릅니다.",
        "running": "코일이 아직 라인 위에 있습니다 (출측 절단기를 지나지 않았습니다).",
        "none": "이 코일의 추적 데이터가 없습니다. 결함이 없다는 뜻이 아닙니다."},
    "tracking_status_label": {"placed": "추적됨", "no_coil": "코일 없음", "no_speed": "속도 없음",
                              "unknown_camera": "알 수 없는 카메라"},
    "surface_label": {"top": "상면", "bottom": "하면"},
    "delay_label": {"stop": "라인 정지", "speed_gap": "속도 데이터 누락"},
}
REVIEW_LABEL = {"new": "미검토", "confirmed": "확인", "false_positive": "오검출", "reclassified": "재분류"}
#: the grading dispositions (ccl.domain.quality.grading.DISPOSITIONS), in order
DISPOSITION_LABEL = {"ship": "출하", "hold": "보류", "downgrade": "등급 하향", "scrap": "폐기"}

ENGLISH = {
    "현재 코일": "Current coil", "코일 번호": "Coil number", "고객사": "Customer", "두께 × 폭": "Thickness × width",
    "길이": "Length", "라인 속도 (최근 30분)": "Line speed (last 30 minutes)", "최신 이미지": "Latest images",
    "원본": "Original", "라벨": "Labeled", "흑백": "Grey", "컬러": "Colour", "실시간 결함": "Live defects",
    "코일 바": "Coil bar", "오늘 유형별 결함": "Today's defects by type", "연결 상태": "Links",
    "서비스 상태": "Services", "미해결 경보": "Open alerts", "연결됨": "connected", "끊김": "disconnected",
    "없음": "none", "유형": "Type", "심각도": "Severity", "신뢰도": "Confidence", "위치 (m)": "Position (m)",
    "검출 시각": "Detected", "상태": "State", "마지막 수신": "Last seen", "실시간 연결 끊김 — 재연결 중":
    "Live link lost — reconnecting", "실시간": "Live", "코일 검색": "Search coils", "부분 입력 가능": "partial",
    "결함 유형": "Defect type", "전체": "All", "CSV 내보내기": "Export CSV", "등록 시각": "Scheduled",
    "결함 수": "Defects", "중량": "Weight", "WPD 통과": "WPD pass", "건": "", "결과 없음": "No results",
    "코일 상세": "Coil detail", "스케줄 (TC 4000)": "Schedule (TC 4000)", "CUT / WPD 이벤트": "CUT / WPD events",
    "라인 속도": "Line speed", "결함 목록": "Defects", "코일 맵": "Coil map", "이미지": "Images",
    "작업": "Actions", "확인": "Confirm", "오검출": "False positive", "재분류": "Reclassify", "의견": "Comment",
    "검토": "Review", "미검토": "New", "낮음": "low", "보통": "medium", "높음": "high", "치명": "critical",
    "길이 방향 (m)": "Along the coil (m)", "폭 방향": "Across the strip", "확대": "Zoom in", "축소": "Zoom out",
    "원래 크기": "Fit", "닫기": "Close", "결함 표시": "Show defects", "기간": "Period", "조회": "Show",
    "유형별 파레토": "Pareto by type", "일별 추이": "Daily trend", "고객사별": "By customer",
    "신뢰도 분포": "Confidence distribution", "누적 비율": "Cumulative share", "코일 수": "Coils",
    "결함 합계": "Total defects", "모델": "Model", "버전": "Version", "배포됨": "Deployed",
    "정확도": "Accuracy", "정밀도": "Precision", "재현율": "Recall", "배포로 지정": "Mark as deployed",
    "지표 이력": "Metrics history", "등록일": "Created", "모델이 없습니다.": "No models yet.",
    "이 모델을 배포 모델로 지정할까요?": "Make this model the deployed one?", "알 수 없는 코일입니다.": "Unknown coil.",
    "이벤트": "Event", "종류": "Kind", "수신 시각": "Received", "권취 길이": "Winding length", "절단 모드": "Cut mode",
    "번호": "No.", "아직 WPD를 통과한 코일이 없습니다.": "No coil has passed the WPD yet.",
    "이미지가 없습니다.": "No images.", "결함이 없습니다.": "No defects.", "속도 데이터 없음": "No speed data",
    "이전 페이지": "Previous page", "다음 페이지": "Next page", "쪽": "page", "개씩": "per page",
    "원본/라벨": "Original/labeled", "이미지 보기": "Image viewer", "통신": "Links",
    "서비스 정보를 가져올 수 없습니다": "Service states unavailable", "BOM": "BOM", "품명": "Product group",
    "품질 판정": "Quality decision", "규칙": "Rules", "수동 판정": "Override", "계산된 판정": "computed",
    "발동한 규칙 없음": "No rule fired", "사유 (필수)": "Reason (required)", "주기성 결함": "Periodic defects",
    "아직 판정되지 않았습니다 (코일이 끝나면 판정합니다).": "Not graded yet (graded when the coil completes).",
    "면": "Surface", "주기 (m)": "Pitch (m)", "폭 위치 (mm)": "Across (mm)", "구간 (m)": "Span (m)",
    "추정 롤": "Likely roll", "출하": "ship", "보류": "hold", "등급 하향": "downgrade", "폐기": "scrap",
    "등급": "Grade", "처리": "Disposition", "품질": "Quality", "등급 판정 규칙": "Grading rule book",
    "미리보기": "Preview", "새 버전으로 저장": "Save as a new version", "버전 이력": "Versions", "작성자": "By",
    "시각": "Time", "메모": "Notes", "활성": "Active", "변경 메모": "Change note", "조건 종류": "Condition kinds",
    "구역": "Zones", "롤 목록": "Rolls", "이름": "Name", "지름 (mm)": "Diameter (mm)", "둘레 (m)": "Circumference (m)",
    "위치": "Location", "롤 추가": "Add roll", "삭제": "Delete", "이 롤을 삭제할까요?": "Delete this roll?",
    "결함 알림 규칙": "Defect alarm rules", "등급별": "By grade",
    "JSON으로 편집합니다. 저장할 때마다 새 버전이 만들어지고 활성화됩니다 (이전 버전은 바뀌지 않습니다).":
        "Edited as JSON. Every save makes a new, active version (earlier versions never change).",
    "주기성 결함의 주기가 롤 둘레(π × 지름)와 맞으면 그 롤을 표시합니다.":
        "A periodic series whose pitch matches a roll's circumference (π × diameter) names that roll.",
    "MO 번호": "MO number", "설명": "Description", "모델 등록": "Register a model", "등록": "Register",
    "검토 기반 정밀도": "Precision from reviews",
    "정밀도 = 확인 / (확인 + 오검출 + 재분류). 모델이 말한 유형 기준, 검토된 결함만.":
    "Precision = confirmed / (confirmed + false positives + reclassified), by the type the model said, reviewed defects only.",
    "검토가 다음보다 적으면 표시하지 않습니다": "Not shown below this many reviews",
    "학습용 내보내기 (zip)": "Export for training (zip)", "검토 수": "Reviews", "모델 미상": "Unknown model",
    "전체 유형": "All types", "검토 부족": "too few reviews", "검토된 결함이 없습니다.": "No reviewed defects.",
    "보고서 (PDF)": "Report (PDF)", "결함 CSV": "Defects CSV",
    "모델을 등록했습니다": "Model registered", "이미 등록된 모델입니다": "This model is registered already",
    "등록한 모델의 ID를 Jetson 박스의 model_id로 설정하세요.": "Set the registered model's ID as the Jetson boxes' model_id.", "두께": "Thickness", "폭": "Width", "보기": "View", "검색": "Search", "재질": "Material", "통판": "Through plate", "순서": "Order", "m/min": "m/min",
    # coil tracking
    "완전": "Complete", "일부 누락": "Partial", "검사율 미상": "Coverage unknown", "진행 중": "Running",
    "추적 데이터 없음": "No tracking data",
    "스케줄, 앞·뒤 용접점, 연속된 속도, 절단이 모두 있고 모든 카메라가 코일 전체를 검사했습니다.":
        "Schedule, both welds, gap-free speed and the cut are all there, and every camera inspected the whole coil.",
    "스케줄, 용접점, 속도 또는 절단 중 빠진 것이 있거나 어떤 카메라가 코일 일부를 검사하지 못했습니다.":
        "The schedule, a weld, speed data or the cut is missing, or a camera missed part of the coil.",
    "하트비트가 없는 카메라가 있어 검사한 비율을 알 수 없습니다. 결함 없음과 다릅니다.":
        "A camera sent no heartbeats: how much of the coil it inspected is unknown. This is not the same as no defects.",
    "코일이 아직 라인 위에 있습니다 (출측 절단기를 지나지 않았습니다).":
        "The coil is still on the line (it has not passed the exit shear).",
    "이 코일의 추적 데이터가 없습니다. 결함이 없다는 뜻이 아닙니다.":
        "There is no tracking data for this coil. That does not mean it has no defects.",
    "추적됨": "Tracked", "코일 없음": "No coil", "속도 없음": "No speed data", "알 수 없는 카메라": "Unknown camera",
    "상면": "Top", "하면": "Bottom", "면": "Surface", "라인 정지": "Line stop", "속도 데이터 누락": "Speed data gap",
    "코일 추적": "Coil tracking", "완전성": "Completeness", "추적 코일": "Tracked coil",
    "용접점 통과 (WPD)": "Welds at the WPD", "적분 길이": "Integrated length", "길이 불일치": "Length disagrees",
    "헤드 / 테일 크롭": "Head / tail crop", "스케줄": "Schedule", "앞·뒤 용접점": "Head and tail welds",
    "속도 데이터 연속": "Speed data gap-free", "출측 절단": "Exit cut", "검사율": "Inspected",
    "알 수 없음 (하트비트 없음)": "unknown (no heartbeats)", "출측 코일": "Exit coils", "조각": "Piece",
    "시작 (m)": "Start (m)", "끝 (m)": "End (m)", "절단 시각": "Cut at", "크롭": "Crop",
    "용접점부터 길이 방향 (m)": "Along the coil from its weld (m)", "추적 위치 (m)": "Tracked position (m)",
    "용접부": "Weld zone", "잠정": "Provisional", "다른 코일로 추적": "Tracked onto another coil",
    "추적 전: 박스가 보낸 위치": "Not tracked yet: the position the box sent", "박스가 보낸 코일 번호": "Coil number the box sent",
    "코일 번호 불일치": "Coil number disagrees", "박스": "box", "추적": "Tracking", "검사 길이": "Inspected length",
    "라인 추적": "Line tracking", "지연 기록": "Delay log", "시작": "Start", "끝": "End", "지속 시간": "Duration",
    "첫 카메라 아래 코일": "Coil under the first camera", "박스 코일 번호": "Box's coil number",
    "추적된 코일": "Tracked coil", "카메라": "Camera", "결함": "Defect", "계속 중": "ongoing",
    "지연이 없습니다.": "No delays.", "불일치가 없습니다.": "No disagreements.", "초": "s",
}
i18n.ENGLISH.update({k: v for k, v in ENGLISH.items() if k not in i18n.ENGLISH})
