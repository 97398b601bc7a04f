"""`transfer_pik` (mixtures only): the selective student with a P(IK) trained on the *other*
sources' weak_train, never the target source's own labels: does P(IK) carry across tasks?"""

from . import selection_student

STUDENT = selection_student(
    "transfer_pik", lambda ctx, deps, split: deps["select"].npy(f"pik_xsource_{split}"),
    "mixtures: self-labels where a P(IK) trained on the other sources says the strong model knows",
    mixture_only=True)
