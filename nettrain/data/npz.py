"""The arrays of an .npz archive without numpy's pickle path: no code ever runs from a data file.

Plain arrays are read with numpy's own header parser. Object arrays (Keras's cached imdb and
reuters files hold ragged lists that way) are rebuilt, where a caller allows them, by an
unpickler that admits numpy's array reconstruction only and refuses every other object.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

from nettrain.words import reason, show_name
from nettrain.errors import DataError


class NpzReader:
    """The arrays of an .npz archive, read with numpy's header parser and never with numpy's pickle path.

    Plain arrays (numbers, booleans, text) are read straight into memory. Object arrays (pickled
    by numpy) are refused, unless `objects=True`: then they are unpickled by `SafeUnpickler`, which
    rebuilds numpy arrays, dtypes and numbers and refuses every other Python object.
    """

    def __init__(self, path: Path, *, objects: bool = False, what: str = ".npz archive"):
        self.path, self.objects = Path(path), objects
        try:
            self.zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise DataError(f"{self.path}: not a readable {what} (a zip of .npy arrays, as numpy.savez "
                            f"writes): {reason(e)}") from None
        self.members = {i.filename[:-4]: i for i in self.zip.infolist() if i.filename.endswith(".npy")}
        self.names = list(self.members)

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def load(self, name: str) -> np.ndarray:
        info = self.members[name]
        where = f"{self.path}: array '{show_name(name)}'"
        try:
            with self.zip.open(info) as fp:
                return self._read(fp, info.file_size, where)
        except DataError:
            raise
        except Exception as e:  # zip, zlib, header and size errors
            raise DataError(f"{where} cannot be read: {reason(e)}") from None

    def _read(self, fp, file_size: int, where: str) -> np.ndarray:
        from numpy.lib import format as npy

        version = npy.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(fp)
        else:
            raise DataError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported "
                            "(1.0 and 2.0 are); save it again with numpy.savez")
        if dtype.hasobject:
            if not self.objects:
                raise DataError(f"{where} holds Python objects (dtype {dtype}); nettrain reads only plain "
                                "numeric and text arrays from .npz files and never unpickles data (pickled "
                                "data can run code)")
            array = SafeUnpickler(fp, where).load()
            if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != tuple(shape):
                raise DataError(f"{where}: the pickled data is not the object array of shape {tuple(shape)} "
                                "its header declares")
            return array
        count = 1
        for n in shape:
            count *= int(n)
        nbytes = count * dtype.itemsize
        if file_size - fp.tell() < nbytes:
            raise DataError(f"{where} is truncated or damaged: its header declares shape {tuple(shape)} "
                            f"({nbytes} bytes) but the file holds {max(file_size - fp.tell(), 0)}")
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        flat = np.empty(count, dtype=dtype)
        view = memoryview(flat.view(np.uint8))
        got = 0
        while got < nbytes:
            n = fp.readinto(view[got:])
            if not n:
                raise DataError(f"{where} is truncated: {got} of {nbytes} bytes")
            got += n
        array = flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array


class _NdarrayToken:
    """What `numpy.ndarray` unpickles to: accepted only as the class argument of _reconstruct."""

    __slots__ = ()


_NDARRAY = _NdarrayToken()


def _numpy_core(name: str):
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    return getattr(multiarray, name)


def _safe_reconstruct(subtype, shape, typecode):
    # numpy pickles every array as _reconstruct(ndarray, (0,), b'b') followed by __setstate__
    if subtype is not _NDARRAY or tuple(shape) != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("unexpected arguments to numpy's array constructor")
    return _numpy_core("_reconstruct")(np.ndarray, (0,), b"b")


def _safe_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str) or not re.fullmatch(r"[<>|=]?[a-zA-Z]\d{0,3}", spec):
        raise pickle.UnpicklingError(f"unexpected dtype {spec!r}")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _safe_scalar(dtype, data=None):
    if isinstance(data, str):  # a Python 2 pickle's byte string, decoded as latin1
        data = data.encode("latin1")
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("unexpected numpy scalar")
    return _numpy_core("scalar")(dtype, data)


_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles numpy object arrays of plain values and nothing else.

    Every global a pickle names goes through `find_class`; only what numpy needs to rebuild an
    array (its constructor, ndarray, dtype, numeric scalars) is admitted, each through a wrapper
    that checks its arguments. Anything else (os.system, builtins.exec, ...) is a DataError
    before it can be called.
    """

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")  # latin1: numpy arrays pickled by Python 2
        self.where = where

    def find_class(self, module: str, name: str):
        found = _PICKLE_ALLOWED.get((module, name))
        if found is None:
            raise DataError(f"{self.where} holds a Python object of type {show_name(module, 60)}."
                            f"{show_name(name, 60)}; refused: nettrain never runs code from data")
        return found

    def persistent_load(self, pid):
        raise DataError(f"{self.where} holds a persistent pickle reference; refused: nettrain never runs "
                        "code from data")
