"""Devices, for PyTorch source compatibility: graphc's eager tensors live on the CPU.

    graphc.device("cuda" if graphc.cuda.is_available() else "cpu") -> device(type='cpu')

Compiled steps choose their hardware with @graphc.compile(backend=...), not with .to(device).
"""


class device:
    """A device name, like torch.device.   device('cpu').type -> 'cpu'"""

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        name, _, idx = str(type).partition(":")
        self.type = name
        self.index = int(idx) if idx else index

    def __repr__(self):
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self):
        return self.type + (f":{self.index}" if self.index is not None else "")

    def __eq__(self, other):
        return str(self) == str(other if isinstance(other, device) else device(other))

    def __hash__(self):
        return hash(str(self))


class _Unavailable:
    """graphc.cuda / graphc.accelerator: eager mode has no accelerator."""

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def device_count():
        return 0

    @staticmethod
    def manual_seed(seed):
        from .random import manual_seed
        manual_seed(seed)

    manual_seed_all = manual_seed



class _Accelerator(_Unavailable):
    """graphc.accelerator, as torch.accelerator on a machine without one: CPU programs take their CPU path.

        graphc.accelerator.is_available() -> False; graphc.accelerator.current_accelerator() -> None
    """

    @staticmethod
    def current_accelerator(check_available=False):
        return None

    @staticmethod
    def current_device_index():
        return -1

    current_device_idx = current_device_index

    @staticmethod
    def set_device_index(device):
        pass

    set_device_idx = set_device_index

    @staticmethod
    def synchronize(device=None):
        pass


cuda = _Unavailable()
xpu = _Unavailable()
accelerator = _Accelerator()
