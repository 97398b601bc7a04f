"""`oracle_pik` (UPPER BOUND, reads w2s ground truth): P(IK) replaced by whether the strong
model's self-label is actually right. Not a method: it shows how much a perfect P(IK) could add.
The one student that reads hidden w2s_train / w2s_val labels; marked `oracle` in every output."""

from . import selection_student


def knows(ctx, deps, split: str):
    return (deps["select"].npy(f"self_{split}") == ctx.splits.labels(split)).astype("float32")


STUDENT = selection_student("oracle_pik", knows, "upper bound: P(IK) = whether the self-label is right (w2s truth)",
                            oracle=True)
