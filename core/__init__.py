"""The kernel every part of CT-DegradBench shares: errors, the HU convention, paper facts,
severity levels, the ``option()`` declaration helper, the output-ownership rule with atomic
writes, Markdown tables, PNG figures and the version.

The builder, the evaluation and the model import it; it imports nothing of theirs (and
nothing heavier than numpy), so the command line can parse and answer ``--help`` quickly.
"""
