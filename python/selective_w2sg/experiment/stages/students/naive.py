"""`naive`: the strong model on the weak model's soft labels, cross-entropy (Burns et al.)."""

from . import Student, weak_soft_labels

STUDENT = Student("naive", "xent", ("weak", "encode", "tune"), weak_soft_labels, "strong on weak soft labels, cross-entropy")
