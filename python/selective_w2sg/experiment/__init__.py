"""The experiment half: tasks, models, the encode pass, training, P(IK), selection, the stage
graph and its students, evaluation and reports. Needs the `[train]` extra (torch, transformers)."""
