"""Face decoders: face embedding [B, D] -> a frontal, neutral face. Importing registers them."""

from .face_decoder import FaceDecoder, FaceOutput
from .linear_face import LinearFaceDecoder
from .warp import WarpDecoder

__all__ = ["FaceDecoder", "FaceOutput", "LinearFaceDecoder", "WarpDecoder"]
