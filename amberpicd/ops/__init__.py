"""Image operations: one module each, a typed model plus ``apply``; ``registry`` names them."""
