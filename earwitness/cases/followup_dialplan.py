"""The Asterisk dialplan the automated survey needs, shipped as text (README "Follow-up").

Append it to ``extensions.conf`` (the test suite loads this very text into its real
Asterisk). ``earwitness-followup-out`` is the centre's own: exten ``<number>`` must
reach the customer; the version here dials over a PJSIP endpoint named ``trunk``.
"""

SURVEY_CONTEXT = r"""
; ---- earwitness follow-up survey: asks for one digit 1-5, reports it over AMI ----
[earwitness-survey]
exten => s,1,NoOp(earwitness follow-up ${EW_FOLLOWUP} for case ${EW_CASE})
 same => n,Answer()
 same => n,Set(TRIES=0)
 same => n(ask),Read(DIGIT,${EW_PROMPT},1,,1,8)
 same => n,GotoIf($[${LEN(${DIGIT})} = 0]?none)
 same => n,UserEvent(FollowUpAnswer,FollowUp: ${EW_FOLLOWUP},Case: ${EW_CASE},Digit: ${DIGIT})
 same => n,Hangup()
 same => n(none),Set(TRIES=$[${TRIES} + 1])
 same => n,GotoIf($[${TRIES} < 2]?ask)
 same => n,Hangup()
"""

DIAL_CONTEXT = r"""
; ---- how earwitness reaches a customer (yours: your trunk and number plan) ----
[earwitness-followup-out]
exten => _X.,1,Dial(PJSIP/${EXTEN}@trunk,30)
 same => n,Hangup()
"""

DIALPLAN = SURVEY_CONTEXT + DIAL_CONTEXT
