"""medtl-monai: transfer learning from pretrained 2D backbones for medical image classification with MONAI.

The package is a house of rooms, each with one job; a room imports only rooms listed before it (docs/architecture.md
has the data flow and a "where does X live" guide):

    utils        option switches and command-line values, benchmark documents
    io           image readers (DICOM series, radiographs, NIfTI, pictures), bad-case errors, image checks
    data         datalists (build, write, read), patient-level splits, datalist validation, inference folders
    transforms   CT / X-ray / RGB preprocessing (Preprocessing remembers its settings) and augmentation
    networks     TransferClassifier: family adapters, ImageNet weights, inflation, truncation, head; checkpoints
    training     the strategy registry, freezing, step-wise fine-tuning, checkpointing, device and DDP set-up
    evaluation   classification metrics and the per-case prediction writer
    bundle       the only code that opens a bundle: root, configs and overrides, the model card, BundleModel
    explain      LayerCAM / Grad-CAM, CAM files, the error-analysis report
    export       ONNX export of a network or a bundle's trained model
    synthetic    demo data, proxy source domain, synthetic DICOM files (never imported by real-data rooms)
    experiments  the strategy study, the cut-point search, proxy pretraining
"""

__version__ = "0.1.0"
