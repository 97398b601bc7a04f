"""`smooth_only` (ablation): smoothed weak labels everywhere, no self-labels."""

from . import Student, selected_labels

STUDENT = Student("smooth_only", "xent", ("select",), selected_labels("smooth_only"),
                  "ablation: smoothed weak labels everywhere")
