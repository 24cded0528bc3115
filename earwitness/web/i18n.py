"""Simplified Chinese and English for the UI: the language, and the words in it.

The language comes from the ``ew_lang`` cookie (the switch in the header sets it), else
from the browser's ``Accept-Language``; English is the fallback. Strings are keyed by
their English text (gettext style), so a template reads naturally and a missing Chinese
entry shows English rather than a key; ``tests/test_web_i18n.py`` fails on a missing one.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "zh")
COOKIE = "ew_lang"

ZH: dict[str, str] = {
    # navigation and chrome
    "Wallboard": "监控大屏",
    "SLA reports": "服务水平报表",
    "Calls": "通话",
    "Cases": "投诉案件",
    "Search": "搜索",
    "QA": "质检",
    "Weekly review": "周例会回顾",
    "Admin": "管理",
    "Log in": "登录",
    "Log out": "退出",
    "Username": "用户名",
    "Password": "密码",
    "Language": "语言",
    "Demo data": "演示数据",
    "Signed in as": "当前用户",
    "Times in": "时区",
    "This account has no password yet.": "此账户尚未设置密码。",
    "Set one here": "在此设置",
    "New password": "新密码",
    "Save": "保存",
    "Saved": "已保存",
    "required": "必填",
    "at least 8 characters": "至少 8 个字符",
    "Something went wrong": "出错了",
    "Not allowed": "无权访问",
    "Not found": "未找到",
    "Back to the start page": "返回首页",
    "Loading…": "加载中…",
    "none": "无",
    "yes": "是",
    "no": "否",
    # wallboard
    "Calls waiting": "等待中的来电",
    "Longest wait": "最长等待",
    "rings": "声",
    "ring": "声",
    "Talking": "通话中",
    "Service level today": "今日服务水平",
    "Target": "目标",
    "within": "以内",
    "Abandoned": "放弃",
    "Answered": "已接听",
    "Offered": "来电",
    "Agents": "坐席",
    "Queue": "队列",
    "Caller": "来电号码",
    "Wait": "等待",
    "State": "状态",
    "Reason": "原因",
    "Since": "起始",
    "available": "空闲",
    "in_call": "通话中",
    "ringing": "振铃中",
    "paused": "暂停",
    "busy": "忙",
    "on_hold": "保持",
    "unavailable": "不可用",
    "invalid": "无效",
    "logged_out": "已签出",
    "unknown": "未知",
    "Nobody is waiting.": "当前无人等待。",
    "No queue members reported yet.": "尚无队列成员状态。",
    "Unanswered past the target": "超过目标仍未接听",
    "Live": "实时",
    "Reconnecting…": "正在重新连接…",
    "PBX link": "PBX 连接",
    "not configured": "未配置",
    # SLA
    "Group by": "分组",
    "queue": "队列",
    "agent": "坐席",
    "hour": "小时",
    "day": "日",
    "total": "合计",
    "From": "从",
    "To": "到",
    "Target in": "目标单位",
    "seconds": "秒",
    "Show": "显示",
    "Service level": "服务水平",
    "Average speed of answer": "平均应答速度",
    "Abandon rate": "放弃率",
    "RONA": "振铃未应答",
    "Rings histogram": "振铃次数分布",
    "Answered within target": "目标内接听",
    "No calls in this period.": "此期间没有来电。",
    "Group": "分组",
    "the start must be before the end": "开始日期必须早于结束日期",
    "not a date": "不是有效日期",
    "s": "秒",
    # calls
    "Call": "通话",
    "Agent": "坐席",
    "Entered": "进线",
    "Answered at": "接听时间",
    "Ended": "结束",
    "Outcome": "结果",
    "Rings": "振铃",
    "Events": "事件",
    "Ring attempts": "振铃尝试",
    "Queues passed": "经过的队列",
    "Transfers": "转接",
    "Recording": "录音",
    "Transcript": "转写文本",
    "customer": "客户",
    "Customer": "客户",
    "Play": "播放",
    "Pause": "暂停",
    "Left: customer · right: agent": "左声道：客户 · 右声道：坐席",
    "No recording for this call.": "此通话没有录音。",
    "No transcript yet.": "尚无转写文本。",
    "QA scorecard": "质检评分卡",
    "Score": "得分",
    "Rule": "规则",
    "Result": "结果",
    "Line": "原文",
    "Linked case": "关联案件",
    "Open a case from this call": "从此通话建立案件",
    "Time": "时间",
    "answered": "已接听",
    "abandoned": "已放弃",
    "timeout": "超时",
    "in_progress": "进行中",
    "rona": "未应答",
    "cancelled": "已取消",
    # cases
    "Case": "案件",
    "Status": "状态",
    "Urgency": "紧急程度",
    "Owner": "负责人",
    "Tier": "升级层级",
    "Category": "类别",
    "Opened": "立案",
    "Deadlines": "时限",
    "Breached deadlines first": "超时案件优先",
    "Filter": "筛选",
    "all": "全部",
    "open": "未结",
    "breached": "已超时",
    "met": "已达成",
    "Facts": "事实要素",
    "Confirm": "确认",
    "Reject": "驳回",
    "Edit": "修改",
    "Promises": "承诺",
    "Kept": "已兑现",
    "Due": "到期",
    "Linked calls": "关联通话",
    "Evidence": "证据",
    "Verify": "校验",
    "Verified": "校验通过",
    "TAMPERED": "已被篡改",
    "Track": "轨迹",
    "Timeline": "时间线",
    "Download bundle": "下载证据包",
    "stop": "停留",
    "gap": "信号中断",
    "arrival": "到达",
    "departure": "出发",
    "Destination": "目的地",
    "Map tiles are off: the track is drawn offline.": "未配置地图瓦片：离线绘制轨迹。",
    "No track on this case.": "此案件没有轨迹。",
    "Nothing recorded yet.": "尚无记录。",
    "No cases.": "没有案件。",
    "Summary": "摘要",
    "Complainant": "投诉人",
    "Phone": "电话",
    "Kind": "类型",
    "Hash": "哈希",
    "Name": "名称",
    "suggested": "建议",
    "confirmed": "已确认",
    "rejected": "已驳回",
    "Value": "值",
    "Fact": "要素",
    # search
    "Search transcripts": "搜索通话转写",
    "Role": "角色",
    "any": "任意",
    "Sort": "排序",
    "relevance": "相关度",
    "newest": "最新",
    "oldest": "最早",
    "hits": "条结果",
    "No hits.": "没有结果。",
    "Play from here": "从此处播放",
    'Words, "phrases", OR, -word, prefix*, fuzzy~': '词语、"短语"、OR、-排除、前缀*、模糊~',
    # QA
    "Agent scorecards": "坐席评分卡",
    "Mean score": "平均分",
    "Calls audited": "已质检通话",
    "Trend": "趋势",
    "Most missed rules": "最常未达标规则",
    "Worst calls": "得分最低的通话",
    "Call audits": "通话质检",
    "Override": "人工复核",
    "pass": "通过",
    "fail": "未通过",
    "n/a": "不适用",
    "Overridden": "已复核",
    "No audits in this period.": "此期间没有质检结果。",
    "Audit": "质检",
    # weekly
    "Week of": "周起始",
    "By category": "按类别",
    "By root cause": "按根因",
    "Satisfaction": "满意度",
    # admin
    "Users": "用户",
    "API keys": "API 密钥",
    "Queue SLA targets": "队列服务水平目标",
    "Add user": "添加用户",
    "Create key": "创建密钥",
    "Revoke": "吊销",
    "Active": "启用",
    "Created": "创建时间",
    "Last used": "最近使用",
    "Revoked": "已吊销",
    "User": "用户",
    "PBX agent": "PBX 坐席",
    "Queues": "队列",
    "Map tile URL": "地图瓦片 URL",
    "QA rules": "质检规则",
    "The key is shown once:": "密钥只显示一次：",
    "Cadence": "振铃节奏",
    "Disable": "停用",
    "Enable": "启用",
}


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie if it names a language we have, else the browser's first zh/en choice."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return "en"


def translator(language: str) -> Callable[[str], str]:
    """``t("Calls waiting")`` in the chosen language (English when no entry exists)."""
    if language == "zh":
        return lambda text: ZH.get(text, text)
    return lambda text: text
