"""Complaint cases: lifecycle, first-ask ownership, deadlines, promises, facts, timeline, review."""
