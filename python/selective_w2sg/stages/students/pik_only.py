"""`pik_only` (ablation): self-labels where P(IK) says so, raw (unsmoothed) weak labels elsewhere."""

from . import Student, selected_labels

STUDENT = Student("pik_only", "xent", ("select",), selected_labels("pik_only"),
                  "ablation: self-labels where P(IK) says so, raw weak labels elsewhere")
