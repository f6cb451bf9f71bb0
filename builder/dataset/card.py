"""Fill the dataset card template (``dataset_card.md``) with the measured facts of a build."""

from __future__ import annotations

import importlib.metadata
from importlib import resources
import platform
from collections import defaultdict
from string import Template

from huggingface_hub import DatasetCard

from ctdegradbench.core.paper import CITATION
from ctdegradbench.core.tables import markdown_table

from ctdegradbench.builder.dataset.options import ALL_CONFIG, REFERENCES_CONFIG
from ctdegradbench.builder.dataset.features import SAMPLE_FIELD_DOCS, SPLITS
from ctdegradbench.builder.core.geometry import DEFAULT_N_VIEWS
from ctdegradbench.core.hu import AIR_HU, METAL_HU, MU_WATER_PER_MM
from ctdegradbench.builder.degradations import REGISTRY, component_fields
from ctdegradbench.builder.simulate.mixtures import MIXTURE_RULE
from ctdegradbench.builder.simulate.simulator import HU_RANGE, HU_STANDARD_TOP
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.simulate.resolution import MAX_PIXEL_SPACING_MM, CALIBRATED_IMAGE_SIZE
from ctdegradbench.builder.simulate.settings import SETTINGS, get_setting
from ctdegradbench.builder.dataset.splits import SPLIT_RULE

# The template ships as package data (a link to the top-level dataset_card.md in the checkout).
TEMPLATE = "dataset_card.md"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def configmarkdown_table(summary) -> str:
    rows = []
    for config in list(summary.rows) + [ALL_CONFIG]:
        if config == ALL_CONFIG:
            paper_configs = [c for c in summary.rows if c != REFERENCES_CONFIG and get_setting(c).in_paper]
            counts = {split: sum(summary.rows[c].get(split, 0) for c in paper_configs) for split in SPLITS}
            size = sum(summary.config_bytes(c) for c in paper_configs)
            what = "the paper's settings above (no files of its own)"
        else:
            counts = {split: summary.rows[config].get(split, 0) for split in SPLITS}
            size = summary.config_bytes(config)
            what = ("reference + clean FBP, one row per slice" if config == REFERENCES_CONFIG
                    else f"{get_setting(config).code} {get_setting(config).class_name}")
        total = sum(counts.values())
        rows.append([f"`{config}`", what, *(counts[s] for s in SPLITS), total,
                     f"{size / 1e6:.1f}", f"{size / max(total, 1) / 1e3:.0f}"])
    return markdown_table(["config", "content", *SPLITS, "rows", "MB on disk", "KB per row"], rows)


def reference_saving(summary) -> str:
    n_refs = summary.config_rows(REFERENCES_CONFIG)
    if not n_refs:
        return "is not applicable (no references were exported)"
    per_ref = summary.config_bytes(REFERENCES_CONFIG) / n_refs
    sample_rows = sum(summary.config_rows(c) for c in summary.rows if c != REFERENCES_CONFIG)
    inline = per_ref * sample_rows
    total = summary.total_bytes
    return (f"keeps the dataset at {total / 1e6:.1f} MB instead of about {(total - summary.config_bytes(REFERENCES_CONFIG) + inline) / 1e6:.1f} MB "
            f"(measured: {per_ref / 1e3:.0f} KB per reference row, {sample_rows} sample rows)")


def severitymarkdown_table() -> str:
    """Each registered degradation's severity parameter, unit and level table."""
    singles = {s.components[0]: s for s in SETTINGS if not s.is_mixture}
    rows = [[f"{d.title} ({singles[d.name].code})" if d.name in singles else d.title, f"`{d.parameter}`", d.unit,
             *(f"{v:g}" for v in d.levels)] for d in REGISTRY.values()]
    return markdown_table(["degradation", "parameter", "unit", *(f"L{lv}" for lv in LEVELS)], rows)


def physics_notes(options) -> str:
    sim = options.simulation.to_dict()
    lines = ["Simulation settings of this build (`metadata[\"config\"]` of every row):", ""]
    lines += [f"- `{key}`: {value}" for key, value in sim.items()]
    low, high = HU_RANGE
    lines += ["", f"Conventions: HU -> attenuation with mu_water = {MU_WATER_PER_MM} /mm (water at ~70 keV), values "
              f"below {AIR_HU:g} HU (scanner padding) as air; line integrals in mm; parallel beam, {DEFAULT_N_VIEWS} "
              f"views over [0, 180), ceil(sqrt(2) N) detector bins of one pixel width. Each measurement integrates "
              f"over its detector bin's aperture and over its view's angular interval (continuous rotation), as a "
              f"scanner measures, so sharp edges do not alias into moire. Sparse views are exact subsets of the "
              f"{DEFAULT_N_VIEWS}, each integrating the same half degree (the tube pulses at fewer angles). FBP "
              f"with a zero-padded ramp filter and the kernel `fbp_filter` (recorded per row). CT numbers are "
              f"clipped as a scanner stores them (`hu_range` per row): to [{low}, {HU_STANDARD_TOP}] HU, the 12-bit "
              f"scale, on rows without metal, and to [{low}, {high}] HU, the extended CT scale, on rows with metal "
              f"or whose reference itself exceeds {HU_STANDARD_TOP} HU; the clipped pixels are counted per row "
              f"(`clipped_low`, `clipped_high`). The metal's increment (metal scan minus metal-free scan) is "
              f"reconstructed from 3 x {DEFAULT_N_VIEWS} views with a Hann-apodized ramp, so the metal does not "
              f"alias into moire far from it. Every level is in physical units (mm, photons per mm of detector), so it is the "
              f"same physics at any pixel spacing; it is calibrated for pixels of at most 1 mm on images of at "
              f"least 256 px. A reference whose body touches the image border is flagged "
              f"(`reference_info.truncated`, `border_body_fraction`), and each records its area above "
              f"{METAL_HU:g} HU (`reference_info.metal_like_area_mm2`: metal already in the patient, saturated "
              f"contrast, a truncation rim), which `--max-metal-area` screens."]
    return "\n".join(lines)


def degradation_physics() -> str:
    """Each registered degradation's statement of its physics."""
    return "\n\n".join(d.physics for d in REGISTRY.values())


def mixturemarkdown_table() -> str:
    return "\n".join(f"| {s.code} `{s.class_name}` | {' -> '.join(s.components)} |" for s in SETTINGS if s.is_mixture)


def fieldmarkdown_table(features) -> str:
    return markdown_table(["field", "type", "meaning"],
                  [[f"`{name}`", f"`{features[name]}`".replace("|", "\\|"), SAMPLE_FIELD_DOCS[name]]
                   for name in features])


def componentmarkdown_table() -> str:
    return markdown_table(["field", "type", "meaning"], [[f"`{name}`", kind, doc] for name, (kind, doc) in component_fields().items()])


def splitmarkdown_table(summary) -> str:
    refs = summary.rows.get(REFERENCES_CONFIG, {})
    setting_configs = [c for c in summary.rows if c != REFERENCES_CONFIG]
    return markdown_table(["split", "reference slices", "degraded rows"],
                  [[split, refs.get(split, 0), sum(summary.rows[c].get(split, 0) for c in setting_configs)]
                   for split in SPLITS])


def sourcemarkdown_table(source_result) -> str:
    from ctdegradbench.builder.sources import provenance

    groups = defaultdict(list)
    for s in source_result.slices:
        groups[(s.source, s.patient_id, s.series_id)].append(s)
    rows = []
    for (source, patient, series), slices in groups.items():
        info = slices[0].info
        facts = provenance(slices[0])
        rows.append([source, patient, str(series)[:24], len(slices), info.get("body_part", "?"),
                     info.get("kernel", "?"), f"{slices[0].pixel_spacing_mm:.3f}",
                     facts.get("origin", "?"), facts.get("license", "?")])
    return markdown_table(["source", "patient", "series", "slices", "body part", "kernel", "pixel mm", "origin", "licence"],
                  rows)


def skipped_text(source_result) -> str:
    if not source_result.skipped:
        return "Nothing was skipped while reading the source."
    return "Skipped while reading the source: " + ", ".join(
        f"{n} {reason}" for reason, n in sorted(source_result.skipped.items())) + "."


def build_facts(build, options) -> str:
    src, sim = options.source, options.simulation
    rule = ("WAIVED with --allow-uncalibrated-grid: the severity levels do not hold their calibrated meaning on "
            "this grid" if options.allow_uncalibrated_grid else "enforced")
    lines = [
        f"- source: {', '.join(f'`{s}`' for s in src.sources)}; image size {src.image_size}; stride {src.stride}; "
        f"max slices per series {src.max_slices}; min body fraction {src.min_body_fraction}; truncated slices: "
        f"{src.truncation}; slices with metal-like area (above {METAL_HU:g} HU): "
        + (f"skipped above {src.max_metal_area_mm2:g} mm^2" if src.max_metal_area_mm2 is not None else "kept"),
        f"- resolution rule ({rule}): pixels of at most {MAX_PIXEL_SPACING_MM:g} mm, images of at least "
        f"{CALIBRATED_IMAGE_SIZE} px",
        f"- realizations per reference and level: {sim.realizations}; seed {sim.seed}; device `{sim.device}`",
        f"- wall time {build.seconds:.1f} s for {build.n_references} reference slices "
        f"({build.n_references / max(build.seconds, 1e-9):.3f} slices/s) on {platform.machine()} "
        f"with {_cpu_count()} CPU cores",
        f"- ct-degradbench {_version('ct-degradbench')}, torch {_version('torch')}, datasets {_version('datasets')}, "
        f"numpy {_version('numpy')}",
    ]
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def render_card(card_data, build, options, source_result, figures) -> str:
    """The README.md of an exported folder: YAML front matter + the filled template."""
    from ctdegradbench.builder.dataset.features import sample_features

    summary = build.export
    body = Template(resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")).substitute(
        version=_version("ct-degradbench"),
        dataset_path=summary.out.name,
        config_table=configmarkdown_table(summary),
        reference_saving=reference_saving(summary),
        severity_table=severitymarkdown_table(),
        physics_notes=physics_notes(options),
        degradation_physics=degradation_physics(),
        mixture_rule=MIXTURE_RULE,
        mixture_table=mixturemarkdown_table(),
        image_size=options.source.image_size,
        field_table=fieldmarkdown_table(sample_features(options.source.image_size)),
        component_table=componentmarkdown_table(),
        split_rule=SPLIT_RULE,
        split_table=splitmarkdown_table(summary),
        source_table=sourcemarkdown_table(source_result),
        skipped=skipped_text(source_result),
        build_facts=build_facts(build, options),
        citation=CITATION.strip(),
        figures="\n\n".join(f"![{caption}]({path})\n\n*{caption}.*" for path, caption in figures),
    )
    return str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))
