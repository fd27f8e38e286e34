"""The trained model: :class:`Speech2Face` and :meth:`~Speech2Face.predict`, and everything that carries it.

One idea per module: the module itself (:mod:`~s2f.model.speech2face`), its saved formats (a model folder
:mod:`~s2f.model.saved_folder`, a decoder on its own :mod:`~s2f.model.decoder_folder`, a training run's
checkpoint :mod:`~s2f.model.checkpoint`, the hub :mod:`~s2f.model.hub`, each read through the weights
checks of :mod:`s2f.config.weights`), the fast inference path (:mod:`~s2f.model.inference`), ONNX export
(:mod:`~s2f.model.onnx`), the closed-form calibration (:mod:`~s2f.model.calibration`), the model card
(:mod:`~s2f.model.card`), the cartoon (:mod:`~s2f.model.cartoon`), what ``s2f models`` prints
(:mod:`~s2f.model.info`) and the angle between embeddings (:mod:`~s2f.model.angles`).

Nothing here imports :mod:`s2f.eval`, :mod:`s2f.train` or Lightning (``tests/package/test_layout.py``): the
evaluation and the training stand on the model, not under it.
"""

from __future__ import annotations

from .decoder_folder import decoder_config, load_decoder, save_decoder
from .speech2face import Prediction, Speech2Face

__all__ = ["Prediction", "Speech2Face", "decoder_config", "load_decoder", "save_decoder"]
