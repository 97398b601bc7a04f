"""`self_only` (baseline): the strong model's own zero-shot answers everywhere (self-training);
no weak label at all. What the selective student must beat to show weak labels help."""

from . import Student

STUDENT = Student("self_only", "xent", ("select", "encode", "tune"),
                  lambda ctx, deps: (deps["select"].npy("self_w2s_train"), deps["select"].npy("self_w2s_val")),
                  "baseline: self-labels everywhere")
