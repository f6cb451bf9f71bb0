"""As run: the dlwpt_cptac_lscc volume of ../shared/ct (99 slices of 3 mm) cut into its upper half (slices
0-48) and lower half (50-98), each built alone with `ct-degradbench build --source halves/NAME --nifti-axes LPS
--max-slices 8 --min-body-fraction 0.1 --num-proc 2 --out NAME` (one patient: a train split only)."""
import os

import nibabel as nib
import numpy as np

img = nib.load("/work/shared/ct/dlwpt_cptac_lscc__C3N-00247_lung_B70f.nii.gz")
data = np.asanyarray(img.dataobj)
for name, sl in (("dlwpt_top", slice(0, 49)), ("dlwpt_bottom", slice(50, 99))):
    os.makedirs(f"halves/{name}")      # new folders: nothing of anyone's is replaced
    aff = img.affine.copy()
    aff[:3, 3] += aff[:3, 2] * sl.start
    nib.save(nib.Nifti1Image(data[:, :, sl], aff, img.header), f"halves/{name}/{name}.nii.gz")
