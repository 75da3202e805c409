"""EDGE: `kshock shell` — watch Kafka traffic, pick a frame, turn it into a fault, apply, revert.

cli.py (the sub-parser and the handler that wires the rest together), sources.py (capture file
or live capture, on threads), session.py (the state), commands.py (the command registry: one
handler per command), completion.py (Tab completion as a plain function), script.py (--script:
the commands without a terminal), app.py (the prompt_toolkit application).
"""
