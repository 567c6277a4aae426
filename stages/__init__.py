"""Thin Typer commands that DVC calls: each reads its params, then calls the `fader` library."""
