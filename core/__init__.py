"""The shared kernel: pieces every app may use (the job model, statistics, the PII redactor).

It imports nothing of ours, so any app can depend on it without bending the arrows of DESIGN.md.
"""
