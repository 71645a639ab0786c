"""A training killed part-way, for the resume tests."""
import contextlib

import pytest

import sr4x.training as training


@contextlib.contextmanager
def killed_at_call(owner, name: str, call: int):
    """Run the block until `owner.name` is called for the `call`-th time, which raises KeyboardInterrupt (a kill);
    expects the kill."""
    real, calls = getattr(owner, name), []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    setattr(owner, name, dies)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        setattr(owner, name, real)


def killed_in_epoch(epoch: int):
    """Run the block's training until it is killed as epoch `epoch` starts; expects the kill."""
    return killed_at_call(training, "train_one_epoch", epoch)
