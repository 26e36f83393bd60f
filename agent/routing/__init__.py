"""All policy on who looks at which item: votes and the best label, routes and reasons,
fitted thresholds, review priority, which label source wins, human verdicts on machine
votes, confidence bounds and the corpus accuracy estimate.
"""
