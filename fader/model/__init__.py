"""The networks of Section 4 (`networks`) and their checkpoints on disk (`checkpoint`)."""
