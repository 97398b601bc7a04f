"""`aux_conf`: the strong model on weak labels with the auxiliary-confidence loss (Burns et al.)."""

from . import Student, weak_soft_labels

STUDENT = Student("aux_conf", "aux_conf", ("weak", "encode", "tune"), weak_soft_labels, "strong on weak labels, aux-confidence loss")
