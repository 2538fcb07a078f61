"""Sandbox mode: the test clocks meterbill moves (`clock.py`)."""
