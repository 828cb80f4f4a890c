"""ctypes binding of libbmfm.so: the in-memory inference entry point of
src/infer/api.h. The library is found through $BMFM_LIB, then next to the
package (../../libbmfm.so from a source checkout), then the loader's path."""
import ctypes
import os

_lib = None


class InferOptions(ctypes.Structure):
    # mirrors bmfm_infer_options in src/infer/api.h (keep in the same order)
    _fields_ = [
        ("model_dir", ctypes.c_char_p),
        ("pooling", ctypes.c_char_p),
        ("order", ctypes.c_char_p),
        ("gene_list", ctypes.c_char_p),
        ("max_length", ctypes.c_int64),
        ("batch_size", ctypes.c_int64),
        ("token_budget", ctypes.c_int64),
        ("seed", ctypes.c_uint64),
        ("normalize", ctypes.c_int),
        ("threads", ctypes.c_int),
        ("case_insensitive", ctypes.c_int),
        ("predict", ctypes.c_int),
        ("want_probs", ctypes.c_int),
        ("progress", ctypes.c_int),
        ("want_logits", ctypes.c_int),
        ("var_column", ctypes.c_char_p),
    ]


def _candidates():
    env = os.environ.get("BMFM_LIB")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libbmfm.so")
    yield os.path.join(here, "..", "..", "libbmfm.so")
    yield "libbmfm.so"


def lib():
    global _lib
    if _lib is not None:
        return _lib
    err = None
    for path in _candidates():
        try:
            L = ctypes.CDLL(path)
            break
        except OSError as e:
            err = e
    else:
        raise OSError(f"bmfm: cannot load libbmfm.so (set BMFM_LIB): {err}")
    P, I64, I32, F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
    L.bmfm_infer_options_default.argtypes = [ctypes.POINTER(InferOptions)]
    L.bmfm_infer_options_default.restype = None
    L.bmfm_infer_csr.argtypes = [ctypes.POINTER(InferOptions), I64, I64,
                                 ctypes.POINTER(I64), ctypes.POINTER(I32), ctypes.POINTER(F32),
                                 ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(P)]
    L.bmfm_infer_csr.restype = ctypes.c_int
    L.bmfm_error_message.argtypes = []
    L.bmfm_error_message.restype = ctypes.c_char_p
    L.bmfm_infer_result_free.argtypes = [P]
    L.bmfm_infer_result_free.restype = None
    L.bmfm_infer_result_embedding.argtypes = [P, ctypes.POINTER(I64), ctypes.POINTER(I64)]
    L.bmfm_infer_result_embedding.restype = ctypes.POINTER(F32)
    L.bmfm_infer_result_n_empty.argtypes = [P]
    L.bmfm_infer_result_n_empty.restype = I64
    L.bmfm_infer_result_n_heads.argtypes = [P]
    L.bmfm_infer_result_n_heads.restype = ctypes.c_int
    L.bmfm_infer_result_head.argtypes = [P, ctypes.c_int, ctypes.POINTER(I64),
                                         ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)),
                                         ctypes.POINTER(ctypes.POINTER(I32)),
                                         ctypes.POINTER(ctypes.POINTER(F32)),
                                         ctypes.POINTER(ctypes.POINTER(F32))]
    L.bmfm_infer_result_head.restype = ctypes.c_char_p
    _lib = L
    return L
