"""The engine: what happens to one file, from its facts to its published outputs.

``explain`` runs the engine's own code on a file with every side effect guarded, to show
why each rule does or does not apply and what a real run would write.
"""
