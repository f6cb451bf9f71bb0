import numpy as np
from PIL import Image

from ctdegradbench.builder.dataset.figures import log_spectrum, save_figure4
from ctdegradbench.builder.sources.reference import ReferenceSlice
from ctdegradbench.builder.sources.phantoms import body_volume

PIXEL_MM = 2.0


def test_log_spectrum_centres_the_zero_frequency():
    image = np.ones((16, 16))
    spectrum = log_spectrum(image)
    assert np.unravel_index(np.argmax(spectrum), spectrum.shape) == (8, 8)
    assert np.isclose(spectrum[8, 8], np.log1p(256.0))


def test_figure4_has_image_and_spectrum_rows(tmp_path):
    hu = body_volume(0, depth=1)[:, :, 0].T.copy()
    ref = ReferenceSlice(hu=hu, pixel_spacing_mm=PIXEL_MM, source="test", patient_id="p", series_id="s", slice_index=0)
    path = save_figure4(ref, tmp_path / "fig4.png", level=1)
    with Image.open(path) as img:
        width, height = img.size
    assert width > 2 * height          # six columns (reference + five degradations), two rows
    assert path.stat().st_size > 20_000
