"""Built-in step programs, run inside steps (locally as processes, in pods as containers)."""
