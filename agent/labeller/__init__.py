"""Prompt -> backend -> validated LabelDecision: prompt templates, answer parsing and
confidence, the reply cache, the call and dollar budget, and the Labeller that ties them.
"""
