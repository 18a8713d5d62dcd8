"""Image operations: one module each, a typed model plus ``apply``; ``registry`` names them.

The models import without Pillow (the config loads them); Pillow is imported inside the
functions that touch pixels, and ``registry.load_pixel_side`` loads it ahead for workers.
"""
