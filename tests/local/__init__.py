"""Tests of the local runtime and of the run/resume lifecycle, through real processes."""
