"""Face decoders: face embedding [B, D] -> a frontal, neutral face. Importing registers them."""

from .face_decoder import DECODERS, FaceDecoder, FaceOutput
from .linear_face import LinearFaceDecoder
from .warp import WarpDecoder

__all__ = ["DECODERS", "FaceDecoder", "FaceOutput", "LinearFaceDecoder", "WarpDecoder"]
