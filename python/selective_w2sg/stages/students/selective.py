"""`selective`: self-labels where P(IK) says the strong model knows, smoothed weak labels elsewhere."""

from . import Student, selected_labels

STUDENT = Student("selective", "xent", ("select",), selected_labels("selective"),
                  "self-labels where P(IK) says the strong model knows, smoothed weak labels elsewhere")
