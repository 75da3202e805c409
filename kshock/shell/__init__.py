"""EDGE: `kshock shell` — watch Kafka traffic, pick a frame, turn it into a fault, apply, revert.

app.py (the prompt_toolkit application, --script and the capture sources), commands.py (the
command registry), completion.py (Tab completion as a plain function), session.py (the state).
"""
