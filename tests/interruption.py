"""A training killed part-way, for the resume tests."""
import contextlib

import pytest

import sr4x.training as training


@contextlib.contextmanager
def killed_in_epoch(epoch: int):
    """Run the block's training until it is killed (KeyboardInterrupt) as epoch `epoch` starts; expects the kill."""
    real, calls = training.train_one_epoch, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    training.train_one_epoch = dies
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        training.train_one_epoch = real
