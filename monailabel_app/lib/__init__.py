"""Tasks of the medtl-monai MONAI Label app: bundle classification inference and training from the datastore."""
