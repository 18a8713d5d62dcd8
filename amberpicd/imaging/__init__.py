"""The imaging layer: the only place (with ``ops`` and the tray's icon) that imports Pillow.

decode: read bytes → Picture (allowlist, limits, shrink-on-load); probe: header facts
for rule matching; encode: Picture → bytes per format; metadata: what an output keeps.
"""
