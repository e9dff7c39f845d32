"""Memory-lean linear + cross-entropy (Cut Cross-Entropy style): never holds the full logits.

`linear_cross_entropy` dispatches to a Triton kernel on CUDA, a chunked PyTorch path on
CPU, or the plain reference. Triton is imported only when the Triton path runs, so this
package imports where triton is absent.
"""

from scaling.kernels.api import linear_cross_entropy, triton_available
from scaling.kernels.chunked import ChunkedLinearCrossEntropy, chunked_linear_cross_entropy
from scaling.kernels.reference import reference_linear_cross_entropy, softcap_logits
from scaling.kernels.validate import KernelInputError

__all__ = [
    "ChunkedLinearCrossEntropy",
    "KernelInputError",
    "chunked_linear_cross_entropy",
    "linear_cross_entropy",
    "reference_linear_cross_entropy",
    "softcap_logits",
    "triton_available",
]
