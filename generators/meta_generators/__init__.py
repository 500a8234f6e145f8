"""meta-orchestrator's built-in generators: JSON Schema (draft 2020-12) descriptions to flows."""
