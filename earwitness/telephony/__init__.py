"""Telephony: AMI, call tracking, ring and SLA maths, queue_log import."""
