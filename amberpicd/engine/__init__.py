"""The engine: what happens to one file, from its bytes to its published outputs.

``pipeline`` runs in a worker: read once → match → decode once → operations → encode → stage.
``derive`` lets a smaller output start from a larger one's picture. ``commit`` runs in the
parent: publish what a worker staged, then ``originals`` keeps, moves, trashes or deletes the
original, and ``recording`` writes the outcome to the journal. ``batch`` is ``amberpicd
process`` (the same engine without the daemon); ``explain`` runs it with side effects guarded.
"""
