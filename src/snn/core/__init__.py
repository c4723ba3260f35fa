"""The math core: pure NumPy functions from arrays to arrays. No I/O, no globals.

Shapes follow the classic course convention: examples are columns, so a batch
``X`` has shape ``(n_x, m)`` and a layer's weights ``W`` have shape ``(n_l, n_prev)``.
"""
