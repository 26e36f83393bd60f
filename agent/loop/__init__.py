"""The labelling loop: pool state, queue entries, recording human labels (one function for
every front door), rounds, the final pass and audit, the batch job, and `LabelingSession`,
the thin facade library users hold.
"""
