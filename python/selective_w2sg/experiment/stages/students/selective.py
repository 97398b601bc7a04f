"""`selective`: self-labels on the questions where the trained P(IK) says the strong model
knows, smoothed weak labels elsewhere."""

from . import selection_student

STUDENT = selection_student(
    "selective", lambda ctx, deps, split: deps["select"].npy(f"pik_{split}"),
    "self-labels where P(IK) says the strong model knows, smoothed weak labels elsewhere")
