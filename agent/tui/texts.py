"""The review screen's words: why an item is here, who proposed the ★, what each figure means.

Every reason text is checked against where the reason is assigned (`agent.routing.route.route`,
`agent.loop.rounds`, `agent.loop.final`), so that it is true whenever it is shown. "LLM" in a
text names whoever gave the first opinion (the zero-shot member under `--llm none`).
"""

from __future__ import annotations

from agent.routing.final_answer import FinalAnswer
from agent.routing.priority import AUDIT_BONUS, DENSITY_POWER

REASONS = {
    "disagree": "LLM and classifier name different labels",
    "abstain": "LLM gave no usable label",
    "clf_unsure": "classifier not sure enough to label it alone",
    "llm_unsure": "LLM and classifier agree, but the LLM's confidence is below the accept bar",
    "committee_split": "LLM and classifier agree, but the classifier's members are split",
    "audit": "random audit: LLM and classifier agree (sets the bar for auto-accepting)",
    "llm_audit": "random audit of the LLM's label (measures how often the LLM is right)",
    "llm_off": "LLM not asked (audits show it adds nothing here)",
    "no_evidence": "no machine evidence yet",
    "agree": "LLM and classifier agree",
}
# The end-of-run audit shares the reason "audit" with a round's audit; the card tells them apart.
FINAL_AUDIT = "accuracy audit of the machine labels (random draw, measures final_label)"
FINAL_AUDIT_HELP = ("accuracy audit at the end of a run: a random draw from every item without "
                    "a person's label (weighted to the least sure); your answers measure the "
                    "accuracy of the labels handed over, whoever proposed them")


def describe_reason(reason: str, first_opinion: str = "LLM", final_audit: bool = False) -> str:
    """Why the item was routed to a human, in words; unknown reasons are shown as they are."""
    if final_audit:
        return FINAL_AUDIT
    return REASONS.get(reason, reason).replace("LLM", first_opinion)


# Who proposed the ★ (`suggestion_source` of the queue entry), in words.
_PROPOSED = {
    "llm": "the LLM's label",
    "zero-shot": "the zero-shot label (label names matched to the text)",
    "classifier": "the classifier's top label",
    "combined": "combined guess of LLM and classifier; neither ranked it first",
}
_ACCEPTED = {  # by the actor of the machine label the item carries
    "final-pass": "already labelled by the classifier's final pass",
    "auto-accept": "already labelled: auto-accepted, LLM and classifier agreed",
}


def star_words(answer: FinalAnswer, actor: str = "") -> str:
    """Who stands behind the ★: `the LLM's label`, `combined guess of …`, `already labelled …`."""
    if answer.label is None:
        return "no machine guess: pick 1-9 or search (/)"
    if answer.status == "auto":
        return _ACCEPTED.get(actor, f"already labelled ({answer.source}, {actor or 'machine'})")
    return _PROPOSED.get(answer.source or "", str(answer.source))


def star_score(answer: FinalAnswer) -> str:
    """`P right 0.93`, or nothing where the project has no figure."""
    return "" if answer.confidence is None else f"P right {answer.confidence:.2f}"


def undo_message(label: str | None, item_key: int, star: str | None) -> str:
    """`undid: 'refund' for item 123 (was suggested: cancel_transfer)`."""
    said = "none fits" if label is None else f"'{label}'"
    return f"undid: {said} for item {item_key} (was suggested: {star or 'nothing'})"


ORDER_RULE = (
    "Audits come first: they get a bonus of "
    f"{AUDIT_BONUS:g} over every review, because the accuracy estimate and the LLM's measured "
    "accuracy are only unbiased once every drawn audit is answered. The rest go by value: "
    "P(★ wrong), times (1 + similar unlabelled items)^"
    f"{DENSITY_POWER:g} in rounds (a small boost for answers that teach the classifier about "
    "many items); the final pass's leftovers by P(★ wrong) alone. Items you skip wait behind "
    "everything else, for you only, until the rest is done."
)

FIGURES = [
    ("header", "your name · answers saved this session (undo takes one back) · items pending "
               "in the queue for everyone (re-read every 10 s) · your answers per minute over "
               "the last 20 · agree: share of your answers that took the ★"),
    ("accuracy", "the project's estimate of how often final_label (the export's answer) is "
                 "right: the lower end of its 95% interval first, then the point estimate and "
                 "how many audits it rests on; 'unknown' until audits are answered. Updated by "
                 "runs and retraining, not by each answer"),
    ("flags", "saving N: answers not yet on disk · retraining · slower ×r: your last 5 "
              "answers' median time over your usual · take a break: minutes since a pause"),
    ("routed", "why the item is here (list below); item = key in the project, id = your id"),
    ("LLM", "its label, its confidence 0-1 and how that was measured: logprob (the model's "
            "token probability of the label), consistency (share of repeated samples giving "
            "it), stated (the model's own figure; least reliable)"),
    ("classifier", "its top three labels with probabilities (sum to 1 over all labels), "
                   "from a model trained on the labels so far"),
    ("★", "what Enter saves: the row's final_label, with who proposed it and P right, the "
          "project's probability that it is right (the error model's, weighing LLM and "
          "classifier by what audits show)"),
    ("1-9", "candidates: LLM = the LLM's confidence in that label, clf = classifier "
            "probability"),
    ("k", "neighbours: cosine similarity of the embeddings (1 = same meaning) and their label"),
]
