"""The paper this project implements: Taifour et al., CT-DegradBench (arXiv:2605.16431)."""

ARXIV_ID = "2605.16431"

CITATION = """\
@article{taifour2026ctdegradbench,
  title   = {CT-DegradBench: A Physics-Informed Benchmark for CT Degradation Detection and Severity Estimation},
  author  = {Taifour, Yousra Nabila and Tliba, Marouane and Ming, Zuheng and Luong, Marie and Aburaed, Nour and
             Chetouani, Aladine and Durak, Gorkem and Bruno, Alessandro and Cheikh, Faouzi Alaya and Zaidi, Habib and
             Bagci, Ulas and Beghdadi, Azeddine},
  journal = {arXiv preprint arXiv:2605.16431},
  year    = {2026}
}
"""
