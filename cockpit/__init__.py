"""Recruitment cockpit."""
