"""``s2f serve``: a local web page that turns a voice into a face, a cartoon and the nearest gallery faces.

Needs the ``serve`` extra (``pip install 's2f[serve]'``) for the web page; the request logic
(:class:`FaceService`) and the gallery need only the base install.
"""

from .gallery import Gallery, Neighbour
from .voice_request import Answer, FaceService, Limits, VoiceRequestError, probe_seconds

__all__ = ["Answer", "FaceService", "Gallery", "Limits", "Neighbour", "VoiceRequestError", "probe_seconds"]
