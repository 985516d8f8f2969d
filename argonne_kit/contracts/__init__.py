"""The four plugin contracts (attention, objective, parallel, data) plus LR schedules.

Each kind has one small abstract interface here. Plugins implement them; the core and the
trainer only ever talk to these interfaces, obtained through :mod:`argonne_kit.registry`.
"""
