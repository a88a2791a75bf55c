"""The command line (typer) and its terminal rendering (rich, on stderr for progress)."""
