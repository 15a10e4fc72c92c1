"""medtl-monai: transfer learning from pretrained 2D backbones for medical image classification with MONAI.

Subpackages:
    networks: truncated / inflated ImageNet backbones with a classification head (TransferClassifier).
    data: DICOM / X-ray / NIfTI readers, datalists, patient-level splits and demo data.
    transforms: CT and X-ray preprocessing and augmentation as MONAI dictionary transforms.
    utils: small helpers shared by scripts (benchmark documents, logging).
"""

__version__ = "0.1.0"
