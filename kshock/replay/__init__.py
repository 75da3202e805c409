"""Offline runs over a capture: the decode listing, rule coverage, and the kernel check of coverage."""
