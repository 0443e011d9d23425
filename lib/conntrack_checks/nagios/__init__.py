"""Nagios plumbing: argument parsing, thresholds, perfdata and the shared usage Resource."""
