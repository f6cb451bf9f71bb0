"""Metal implants: their shapes, materials, severity scaling and anatomical placement.

Part of the metal degradation (:mod:`builder.degradations.metal`), kept apart like
:mod:`builder.degradations.spectrum`.

Implant types (:data:`IMPLANT_TYPES`), each one or more metal objects of one material:

* ``disk``: the paper's single metal disk (Eq. 12), of the configured material, in the body;
* ``hip_pair``: a pair of titanium-alloy femoral stems (disks) centred in the two femoral
  heads / necks of a pelvis slice (left and right thick bone);
* ``spine_screws``: two titanium pedicle screws (rectangles seen along their length) whose
  tips meet in the vertebral body, entering posterolaterally at 20 degrees to the
  antero-posterior axis;
* ``dental``: dental amalgam fillings (small ellipses) on the teeth of a head slice, one to
  four (more teeth filled at higher levels, the first ones kept);
* ``clip``: one to four stainless-steel surgical clips (two legs each) in a row in soft tissue.

Shapes (:class:`MetalObject`): ellipses and rectangles in image coordinates
``x = col - N//2``, ``y = row - N//2`` (pixels), the long axis at ``angle_deg`` from the
+x (column) axis towards +y (down the rows); sizes are full lengths in mm (``length_mm``
along that axis, ``width_mm`` across). Every ray's chord through an object is exact
(:func:`chords`).

Severity (:func:`level_metal_mm`). A level is a **steel-equivalent diameter** ``metal_mm``
(3 / 6 / 10 / 15 mm at L0..L3, the paper's disk diameters): the implant's total
cross-section weighted by its attenuation relative to steel at the spectrum's effective
energy, ``sum_o area_o mu_o / mu_steel``, equals ``pi metal_mm^2 / 4``. Since every view's
metal line integrals sum to ``mu * area`` (mm), this is the same amount of metal attenuation
in every view at a given level, whatever the implant; a steel disk has exactly the paper's
diameter. Each type keeps its shape and grows by one linear scale with the level.

Placement (:func:`place_implant`) is drawn once per reference (a seed derived from the build
seed and the reference id), so the levels of one slice differ only in the amount of metal:
severity is monotone per slice, as the paper's "increasing the size of the metal region".
The anatomy comes from the slice (:func:`find_anatomy`): body, lungs, bone, the body region
(head, chest, abdomen, pelvis), femoral heads, a vertebral body, teeth. Metal never lies in
lung or air: each type is anchored to bone (hip, spine, teeth) or to soft tissue (clips) or
to body pixels away from lung and air (disk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ctdegradbench.builder.core.protocol import IMPLANT_TYPES

METAL_MM_LEVELS = (3.0, 6.0, 10.0, 15.0)   # steel-equivalent diameter at L0..L3
IMPLANT_MATERIAL = {"hip_pair": "titanium", "spine_screws": "titanium", "dental": "amalgam", "clip": "steel"}
SHAPES = ("ellipse", "rectangle")

# Anatomy thresholds (HU, mm). Bone: cancellous bone is 150-400 HU, cortical 700-1900.
BODY_HU = -300.0
LUNG_HU = -400.0
BONE_HU = 200.0
SPINE_DEPTH = 0.55                # the vertebral body lies in the posterior 45 % of the body (behind
                                  # the contrast-filled heart and aorta, which also exceed BONE_HU)
TOOTH_HU = 2000.0                 # enamel and dentine; skull bone stays below in most slices
SOFT_TISSUE_HU = (-100.0, 150.0)
HEAD_MAX_EXTENT_MM = 230.0        # a head is narrower than this, a trunk wider
CHEST_LUNG_FRACTION = 0.05        # of the body area
FEMORAL_HEAD_MIN_RADIUS_MM = 12.0 # inscribed radius of a femoral head / neck (iliac wing is thinner)
VERTEBRA_MIN_RADIUS_MM = 8.0      # inscribed radius of a vertebral body
MARGIN_MM = 2.0                   # tissue kept between metal and air / lung
SCREW_ANGLE_DEG = 20.0            # medial convergence of pedicle screws from the AP axis
SCREW_ASPECT = 7.0                # screw length / diameter
CLIP_ASPECT = 8.0                 # clip leg length / leg width
CLIP_SPACING_MM = 8.0             # between the clips of a row
FILLING_ASPECT = 1.5


@dataclass(frozen=True)
class MetalObject:
    """One metal object: ``shape`` in :data:`SHAPES`, centre ``(row, col)`` in pixels, full
    ``length_mm`` along ``angle_deg`` (from +x towards +y) and ``width_mm`` across."""

    shape: str
    center_px: tuple[float, float]
    length_mm: float
    width_mm: float
    angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown metal shape {self.shape!r}; expected one of {SHAPES}")
        for name in ("length_mm", "width_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"{name} must be a positive number of mm, got {value!r}")
        if len(self.center_px) != 2 or not all(math.isfinite(float(c)) for c in self.center_px):
            raise ValueError(f"center_px must be a finite (row, col) pair, got {self.center_px!r}")
        object.__setattr__(self, "center_px", (float(self.center_px[0]), float(self.center_px[1])))
        object.__setattr__(self, "length_mm", float(self.length_mm))
        object.__setattr__(self, "width_mm", float(self.width_mm))
        object.__setattr__(self, "angle_deg", float(self.angle_deg))

    @property
    def area_mm2(self) -> float:
        factor = math.pi / 4 if self.shape == "ellipse" else 1.0
        return factor * self.length_mm * self.width_mm

    def half_axes_px(self, spacing_mm: float) -> tuple[float, float]:
        return 0.5 * self.length_mm / spacing_mm, 0.5 * self.width_mm / spacing_mm

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (x, y) of the long axis and across it."""
        phi = math.radians(self.angle_deg)
        return np.array([math.cos(phi), math.sin(phi)]), np.array([-math.sin(phi), math.cos(phi)])

    def extent_px(self, spacing_mm: float) -> float:
        """Radius (pixels) of a circle around the centre that holds the object."""
        a, b = self.half_axes_px(spacing_mm)
        return math.hypot(a, b) if self.shape == "rectangle" else max(a, b)


# ---------------------------------------------------------------- geometry
def object_mask(obj: MetalObject, image_size: int, spacing_mm: float) -> np.ndarray:
    """Pixels whose centre lies in the object: bool ``(N, N)``."""
    index = np.arange(image_size, dtype=np.float64)
    dy = index[:, None] - obj.center_px[0]
    dx = index[None, :] - obj.center_px[1]
    e1, e2 = obj.axes()
    u = dx * e1[0] + dy * e1[1]
    v = dx * e2[0] + dy * e2[1]
    a, b = obj.half_axes_px(spacing_mm)
    if obj.shape == "ellipse":
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    return (np.abs(u) <= a) & (np.abs(v) <= b)


def implant_mask(objects, image_size: int, spacing_mm: float) -> np.ndarray:
    """Union of :func:`object_mask` of ``objects``: the paper's ``m(x)``."""
    mask = np.zeros((image_size, image_size), dtype=bool)
    for obj in objects:
        mask |= object_mask(obj, image_size, spacing_mm)
    return mask


def chords(obj: MetalObject, theta, t, image_size: int, spacing_mm: float, xp=np):
    """Exact chord of each ray through ``obj``: ``(entry, length)`` in pixels along the ray.

    Rays at angle ``theta`` (radians) and detector position ``t`` (pixels from the centre
    bin), broadcast together; the ray is ``p(l) = t n + l d`` with ``n = (cos, -sin)``,
    ``d = (sin, cos)`` in ``(x, y) = (col, row) - N // 2``. Works on numpy arrays or torch
    tensors (``xp`` is the module, ``np`` or ``torch``).
    """
    centre = image_size // 2
    cx, cy = obj.center_px[1] - centre, obj.center_px[0] - centre
    e1, e2 = (tuple(float(v) for v in axis) for axis in obj.axes())
    a, b = obj.half_axes_px(spacing_mm)
    cos, sin = xp.cos(theta), xp.sin(theta)
    px, py = t * cos - cx, -t * sin - cy                 # ray's foot point relative to the centre
    u0, v0 = px * e1[0] + py * e1[1], px * e2[0] + py * e2[1]
    du, dv = sin * e1[0] + cos * e1[1], sin * e2[0] + cos * e2[1]
    if obj.shape == "ellipse":
        qa = (du / a) ** 2 + (dv / b) ** 2
        qb = u0 * du / a ** 2 + v0 * dv / b ** 2
        qc = (u0 / a) ** 2 + (v0 / b) ** 2 - 1.0
        root = xp.sqrt(xp.clamp(qb * qb - qa * qc, min=0.0) if xp is not np else np.maximum(qb * qb - qa * qc, 0.0))
        return (-qb - root) / qa, 2.0 * root / qa
    big = 1e12
    lo, hi = -big, big
    for c0, dc, half in ((u0, du, a), (v0, dv, b)):
        tiny = abs(dc) < 1e-12
        safe = xp.where(tiny, xp.ones_like(dc) if xp is not np else np.ones_like(dc), dc)
        l1, l2 = (-half - c0) / safe, (half - c0) / safe
        low = xp.minimum(l1, l2)
        high = xp.maximum(l1, l2)
        inside = abs(c0) <= half
        low = xp.where(tiny, xp.where(inside, -big * xp.ones_like(low), big * xp.ones_like(low)), low)
        high = xp.where(tiny, xp.where(inside, big * xp.ones_like(high), -big * xp.ones_like(high)), high)
        lo, hi = xp.maximum(lo * xp.ones_like(low), low), xp.minimum(hi * xp.ones_like(high), high)
    length = hi - lo
    length = xp.clamp(length, min=0.0) if xp is not np else np.maximum(length, 0.0)
    return lo, length


def projected_half_extent_px(obj: MetalObject, theta, spacing_mm: float):
    """Half the object's shadow width on the detector at angles ``theta`` (pixels), numpy."""
    e1, e2 = obj.axes()
    a, b = obj.half_axes_px(spacing_mm)
    n1 = np.cos(theta) * e1[0] - np.sin(theta) * e1[1]
    n2 = np.cos(theta) * e2[0] - np.sin(theta) * e2[1]
    if obj.shape == "ellipse":
        return np.sqrt((a * n1) ** 2 + (b * n2) ** 2)
    return a * np.abs(n1) + b * np.abs(n2)


# ---------------------------------------------------------------- severity
def level_metal_mm(level: int) -> float:
    """The steel-equivalent diameter of ``level`` (mm)."""
    return METAL_MM_LEVELS[level]


def steel_equivalent_area(objects, attenuation_ratio: float) -> float:
    """``sum area * mu / mu_steel`` (mm^2) of objects of one material."""
    return float(sum(o.area_mm2 for o in objects)) * float(attenuation_ratio)


# ---------------------------------------------------------------- anatomy
@dataclass(frozen=True)
class Anatomy:
    """What a slice shows, for placing implants (masks ``(N, N)`` bool; points ``(row, col)``)."""

    region: str                      # "head", "chest", "abdomen", "pelvis"
    body: np.ndarray                 # body with its holes (lungs, bowel gas) filled
    tissue_distance_mm: np.ndarray   # distance to the nearest air / lung pixel (0 outside the body)
    soft_distance_mm: np.ndarray     # distance to the nearest pixel that is not soft tissue
    hips: tuple                      # ((row, col, radius_mm), (row, col, radius_mm)) or ()
    vertebra: tuple                  # (row, col, radius_mm) or ()
    teeth: tuple                     # ((row, col), ...) tooth centres, anterior first


def find_anatomy(hu: np.ndarray, spacing_mm: float, body_part: str | None = None) -> Anatomy:
    """Body, air / lung distance, body region, femoral heads, vertebral body and teeth of a slice.

    Heuristics on HU (thresholds above): the body is the largest region above ``BODY_HU``
    with its holes filled; lungs (and gas) are pixels below ``LUNG_HU`` inside it. The region
    is the header's body part when it names one (``body_part``), else "head" when the body is
    narrower than ``HEAD_MAX_EXTENT_MM`` and holds no lung, "chest" when lungs cover ``CHEST_LUNG_FRACTION`` of the body,
    "pelvis" when two thick bones (inscribed radius >= ``FEMORAL_HEAD_MIN_RADIUS_MM``) lie in
    the left and right thirds, else "abdomen". The vertebral body is the thickest bone near
    the midline in the posterior part of the body. Teeth (head only) are regions above
    ``TOOTH_HU`` in the anterior half.
    """
    hu = np.asarray(hu, dtype=np.float64)
    n = hu.shape[0]
    smooth = ndimage.gaussian_filter(hu, 1.0)
    labels, count = ndimage.label(smooth > BODY_HU)
    if count == 0:
        raise ValueError("the slice holds no body (nothing above -300 HU): no place for a metal implant")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))
    air = (~body) | (smooth < LUNG_HU)
    tissue_distance = ndimage.distance_transform_edt(np.pad(~air, 1))[1:-1, 1:-1] * spacing_mm
    soft = body & (smooth >= SOFT_TISSUE_HU[0]) & (smooth <= SOFT_TISSUE_HU[1])
    soft_distance = ndimage.distance_transform_edt(np.pad(soft, 1))[1:-1, 1:-1] * spacing_mm
    rows, cols = np.nonzero(body)
    extent = max(np.ptp(rows), np.ptp(cols)) * spacing_mm
    lung_fraction = float(np.count_nonzero(body & (smooth < LUNG_HU))) / max(1, np.count_nonzero(body))
    centre_col, width = 0.5 * (cols.min() + cols.max()), max(1, np.ptp(cols))
    top, height = rows.min(), max(1, np.ptp(rows))

    bone = ndimage.binary_fill_holes(body & (smooth > BONE_HU))
    bone_depth = ndimage.distance_transform_edt(bone) * spacing_mm
    blabels, nb = ndimage.label(bone)
    thick = []
    for k in range(1, nb + 1):
        depth = np.where(blabels == k, bone_depth, 0.0)
        peak = np.unravel_index(int(np.argmax(depth)), depth.shape)
        thick.append((float(depth[peak]), int(peak[0]), int(peak[1])))
    thick.sort(reverse=True)

    hips = ()
    right = [t for t in thick if t[2] < centre_col - width / 6 and t[0] >= FEMORAL_HEAD_MIN_RADIUS_MM]
    left = [t for t in thick if t[2] > centre_col + width / 6 and t[0] >= FEMORAL_HEAD_MIN_RADIUS_MM]
    if right and left and abs(right[0][1] - left[0][1]) * spacing_mm < 40:
        hips = ((right[0][1], right[0][2], right[0][0]), (left[0][1], left[0][2], left[0][0]))
    vertebra = ()
    for depth, r, c in thick:
        if depth >= VERTEBRA_MIN_RADIUS_MM and abs(c - centre_col) < 0.12 * width and r > top + SPINE_DEPTH * height:
            vertebra = (r, c, depth)
            break

    header = (body_part or "").upper()
    if header in ("CHEST", "THORAX", "LUNG"):
        region = "chest"
    elif header in ("ABDOMEN", "PANCREAS", "LIVER"):
        region = "abdomen"
    elif header == "PELVIS":
        region = "pelvis"
    elif header in ("HEAD", "BRAIN", "SKULL") or (extent < HEAD_MAX_EXTENT_MM and lung_fraction < 0.01):
        region = "head"
    elif lung_fraction >= CHEST_LUNG_FRACTION:
        region = "chest"
    elif hips:
        region = "pelvis"
    else:
        region = "abdomen"

    teeth = ()
    if region == "head":
        tlabels, nt = ndimage.label(body & (smooth > TOOTH_HU) & (np.arange(n)[:, None] < top + 0.5 * height))
        found = []
        for k in range(1, nt + 1):
            area = np.count_nonzero(tlabels == k) * spacing_mm ** 2
            if area >= 4.0:
                r, c = ndimage.center_of_mass(tlabels == k)
                found.append((float(r), float(c)))
        if len(found) >= 2:
            teeth = tuple(sorted(found))
    return Anatomy(region=region, body=body, tissue_distance_mm=tissue_distance, soft_distance_mm=soft_distance,
                   hips=hips, vertebra=vertebra, teeth=teeth)


def eligible_types(anatomy: Anatomy) -> tuple[str, ...]:
    """Implant types that fit the slice: hips need femoral heads, screws a vertebra, fillings
    teeth; clips go in soft tissue (not in a head without teeth: cranial clips only);
    a disk fits any body."""
    types = []
    if anatomy.hips:
        types.append("hip_pair")
    if anatomy.vertebra and anatomy.region != "head":
        types.append("spine_screws")
    if anatomy.teeth:
        types.append("dental")
    if anatomy.region != "head" or not anatomy.teeth:
        types.append("clip")
    types.append("disk")
    return tuple(types)


# ---------------------------------------------------------------- placement
def _scale(templates, metal_mm: float, attenuation_ratio: float):
    """Linear scale that makes ``templates`` (objects at scale 1) reach ``pi metal_mm^2 / 4`` of steel."""
    base = steel_equivalent_area(templates, attenuation_ratio)
    return math.sqrt(math.pi * metal_mm ** 2 / 4 / base)


def _fits(objects, anatomy: Anatomy, spacing_mm: float) -> bool:
    n = anatomy.body.shape[0]
    for obj in objects:
        r, c = obj.center_px
        extent = obj.extent_px(spacing_mm)
        if min(r, c) - extent < 0 or max(r, c) + extent > n - 1:
            return False
        mask = object_mask(obj, n, spacing_mm)
        if not mask.any() or anatomy.tissue_distance_mm[mask].min() < MARGIN_MM:   # every metal pixel in tissue
            return False
    return True


def implant_objects(implant: str, anchors: dict, level: int, spacing_mm: float,
                    attenuation_ratio: float) -> list[MetalObject]:
    """The objects of ``implant`` at ``level``, from its anchors (fixed per reference)."""
    metal_mm = level_metal_mm(level)
    if implant == "disk":
        d = metal_mm / math.sqrt(attenuation_ratio)
        return [MetalObject("ellipse", anchors["centre"], d, d)]
    if implant == "hip_pair":
        unit = [MetalObject("ellipse", c, 1.0, 1.0) for c in anchors["centres"]]
        k = _scale(unit, metal_mm, attenuation_ratio)
        return [MetalObject("ellipse", c, k, k) for c in anchors["centres"]]
    if implant == "spine_screws":
        unit = [MetalObject("rectangle", (0.0, 0.0), SCREW_ASPECT, 1.0)] * 2
        k = _scale(unit, metal_mm, attenuation_ratio)
        length = SCREW_ASPECT * k
        objects = []
        for (tr, tc), angle in zip(anchors["tips"], anchors["angles_deg"]):
            phi = math.radians(angle)     # axis from the tip towards the entry point (posterior)
            centre = (tr + 0.5 * length / spacing_mm * math.sin(phi), tc + 0.5 * length / spacing_mm * math.cos(phi))
            objects.append(MetalObject("rectangle", centre, length, k, angle))
        return objects
    if implant == "dental":
        count = level + 1
        teeth = anchors["teeth"][:count]
        unit = [MetalObject("ellipse", (0.0, 0.0), FILLING_ASPECT, 1.0)] * len(teeth)
        k = _scale(unit, metal_mm, attenuation_ratio)
        return [MetalObject("ellipse", t, FILLING_ASPECT * k, k, a) for t, a in zip(teeth, anchors["angles_deg"])]
    if implant == "clip":
        count = level + 1
        unit = [MetalObject("rectangle", (0.0, 0.0), CLIP_ASPECT, 1.0)] * (2 * count)
        k = _scale(unit, metal_mm, attenuation_ratio)
        length, width = CLIP_ASPECT * k, k
        row_dir = math.radians(anchors["row_angle_deg"])
        leg_dir = math.radians(anchors["row_angle_deg"] + 90.0)
        objects = []
        for i in range(count):
            offset = (i - (count - 1) / 2) * CLIP_SPACING_MM / spacing_mm
            for side in (-1, 1):
                gap = side * 1.5 * width / spacing_mm
                r = anchors["centre"][0] + offset * math.sin(row_dir) + gap * math.sin(row_dir)
                c = anchors["centre"][1] + offset * math.cos(row_dir) + gap * math.cos(row_dir)
                objects.append(MetalObject("rectangle", (r, c), length, width, math.degrees(leg_dir)))
        return objects
    raise ValueError(f"unknown implant type {implant!r}; expected one of {IMPLANT_TYPES}")


def _draw_point(distance_mm: np.ndarray, need_mm: float, rng: np.random.Generator, extra=None):
    ok = distance_mm >= need_mm
    if extra is not None:
        ok &= extra
    candidates = np.argwhere(ok)
    if len(candidates) == 0:
        return None
    r, c = candidates[int(rng.integers(len(candidates)))]
    return (float(r), float(c))


def place_implant(implant: str, anatomy: Anatomy, spacing_mm: float, attenuation_ratio: float,
                  rng: np.random.Generator) -> dict | None:
    """Anchors of ``implant`` on this slice (drawn from ``rng``), checked to hold the largest
    level inside tissue; ``None`` when the slice has no place for it."""
    largest = len(METAL_MM_LEVELS) - 1

    def ok(anchors) -> bool:
        return _fits(implant_objects(implant, anchors, largest, spacing_mm, attenuation_ratio), anatomy, spacing_mm)

    if implant == "disk":
        d = METAL_MM_LEVELS[-1] / math.sqrt(attenuation_ratio)
        point = _draw_point(anatomy.tissue_distance_mm, d / 2 + MARGIN_MM, rng)
        return None if point is None else {"centre": point}
    if implant == "hip_pair":
        if not anatomy.hips:
            return None
        anchors = {"centres": [(float(r), float(c)) for r, c, _ in anatomy.hips]}
        return anchors if ok(anchors) else None
    if implant == "spine_screws":
        if not anatomy.vertebra:
            return None
        r, c, radius = anatomy.vertebra
        radius_px = radius / spacing_mm
        tips = [(r - 0.3 * radius_px, c - 0.15 * radius_px), (r - 0.3 * radius_px, c + 0.15 * radius_px)]
        # from each tip the screw runs posterior (+rows) and lateral: the patient's right screw
        # (smaller col) goes to smaller cols.
        angles = [90.0 + SCREW_ANGLE_DEG, 90.0 - SCREW_ANGLE_DEG]
        anchors = {"tips": tips, "angles_deg": angles}
        return anchors if ok(anchors) else None
    if implant == "dental":
        if not anatomy.teeth:
            return None
        order = rng.permutation(len(anatomy.teeth))
        teeth = [anatomy.teeth[i] for i in order][:len(METAL_MM_LEVELS)]
        while len(teeth) < len(METAL_MM_LEVELS):          # few teeth: fill some twice, beside the first
            r, c = teeth[len(teeth) % len(order)]
            teeth.append((r, c + 4.0 / spacing_mm))
        angles = [float(rng.uniform(0.0, 180.0)) for _ in teeth]
        return {"teeth": teeth, "angles_deg": angles}
    if implant == "clip":
        for _ in range(20):
            centre = _draw_point(anatomy.soft_distance_mm, 8.0, rng, extra=anatomy.tissue_distance_mm >= 25.0)
            if centre is None:
                return None
            anchors = {"centre": centre, "row_angle_deg": float(rng.uniform(0.0, 180.0))}
            if ok(anchors):
                return anchors
        return None
    raise ValueError(f"unknown implant type {implant!r}; expected one of {IMPLANT_TYPES}")
