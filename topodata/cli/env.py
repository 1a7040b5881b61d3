"""``topodata env``: versions and devices, to paste into bug reports."""

from __future__ import annotations

import platform


def add_parser(subparsers, help: str):
    p = subparsers.add_parser("env", help=help, description=help)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from topodata._meta import versions
    from topodata._threads import cpu_kernels

    print(f"python        {platform.python_version()} ({platform.machine()})")
    for name, ver in versions().items():
        print(f"{name:<14}{ver}")
    try:
        import torch

        cuda = torch.cuda.is_available()
        print(f"{'cuda':<14}{torch.cuda.get_device_name(0) if cuda else 'not available'}")
        print(f"{'threads':<14}{torch.get_num_threads()}")
        print(f"{'cpu':<14}{cpu_kernels()}")
    except ImportError:
        pass
    return 0
