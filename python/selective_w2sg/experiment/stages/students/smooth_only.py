"""`smooth_only` (ablation): smoothed weak labels everywhere, no self-labels."""

from . import Student

STUDENT = Student("smooth_only", "xent", ("smooth", "encode", "tune"),
                  lambda ctx, deps: (deps["smooth"].npy("smoothed_w2s_train"), deps["smooth"].npy("smoothed_w2s_val")),
                  "ablation: smoothed weak labels everywhere")
