"""The judging prompt the judge and evaluate stages render: the built-in one or the user's.

``judging.template`` and ``judging.referenceTemplate`` name template files
(:mod:`selftaught.templates`); they are read and checked once when the stage starts
(:mod:`.prompt_files`), so a bad placeholder fails the stage before anything is judged, with a
BadInput naming the spec field.
Rows that carry a reference answer are judged reference-guided: with ``referenceTemplate``,
else with the user's ``template`` if it uses ``{reference}``, else with the built-in
reference-guided prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from selftaught import prompts
from selftaught.pod import BadInput
from selftaught.stages.prompt_files import read_field
from selftaught.task import StageTask
from selftaught.templates import JudgeTemplate, PromptTemplate


@dataclass(frozen=True)
class JudgePrompts:
    """Renders one pairwise judging prompt for a pair, whichever template applies."""

    style: prompts.Style
    template: JudgeTemplate | None = None
    reference_template: JudgeTemplate | None = None

    def render(
        self, question: str, answer_a: str, answer_b: str, reference: str | None = None
    ) -> list[prompts.Message]:
        if reference is not None and self.reference_template is not None:
            return self.reference_template.render(
                question=question, answer_a=answer_a, answer_b=answer_b, reference=reference
            )
        if self.template is not None:
            if self.template.uses_reference and reference is None:
                raise BadInput(
                    "spec.judging.template uses {reference}, but a row has no reference answer "
                    "(use it as referenceTemplate, or give every row a reference)"
                )
            return self.template.render(
                question=question, answer_a=answer_a, answer_b=answer_b, reference=reference
            )
        return prompts.judge_prompt(
            style=self.style,
            instruction=question,
            answer_a=answer_a,
            answer_b=answer_b,
            reference=reference,
        )


def read_templates(task: StageTask) -> tuple[JudgeTemplate | None, JudgeTemplate | None]:
    """``spec.judging``'s (template, referenceTemplate), read and checked: call it before the
    model is loaded, so a bad template fails in seconds, not after loading a 70B model."""
    template = read_field(task, "spec.judging.template")
    reference = read_field(task, "spec.judging.referenceTemplate")
    return _judging(template), _judging(reference)


def _judging(template: PromptTemplate | None) -> JudgeTemplate | None:
    return None if template is None else JudgeTemplate(user=template.user, system=template.system)


def judge_prompts(
    style: prompts.Style, templates: tuple[JudgeTemplate | None, JudgeTemplate | None]
) -> JudgePrompts:
    """The prompts for a model of ``style`` and the templates :func:`read_templates` gave."""
    return JudgePrompts(style=style, template=templates[0], reference_template=templates[1])
