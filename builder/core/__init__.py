"""What every layer of the builder uses: errors, the HU <-> attenuation convention, the
scan geometry, seeds and typed options."""
