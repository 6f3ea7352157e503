"""Dataset tools behind ``lprnet-data``: one module per job, numpy/cv2 only (no TensorFlow).

- :mod:`.stats`    counts, label lengths, characters, image sizes, overlap between splits
- :mod:`.validate` every row against a plate format; cleaned CSV + rejects CSV
- :mod:`.convert`  any reader layout (CCPD, OpenVINO list, label-in-file-name, CSV) -> images/ + labels.csv
- :mod:`.split`    deterministic train/val/test split that keeps groups and plates on one side
- :mod:`.show`     contact sheet of model inputs, optionally augmented

Label sources are parsed by :mod:`lprnet_tf.data.readers` (:func:`~lprnet_tf.data.readers.scan_rows`
for rows as written, :func:`~lprnet_tf.data.readers.read_samples` for checked samples); labels are
normalized and checked by :class:`lprnet_tf.vocab.PlateFormat`.
"""
