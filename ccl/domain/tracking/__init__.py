"""Coil tracking: where on which coil every defect and image is, and how sure that is.

Pure (no I/O, no clock of its own): the stored telegrams and detections go in, placements,
per-coil results and the delay log come out. ``settings`` (the line's distances and clocks),
``line`` (strip position as the integral of line speed), ``coils`` (coils between welds, their
head and tail times), ``cuts`` (exit coils from the shear's cuts), ``placement`` (detection ->
coil and metre), ``completeness`` (what is known about each coil), ``model`` (all of it for
one window of data). docs/tracking.md describes the model.
"""
