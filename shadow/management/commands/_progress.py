"""A progress bar on stderr for the shadow commands (off when stderr is not a terminal)."""
import sys

from tqdm import tqdm


class Progress:
    def __init__(self, unit: str, desc: str = ""):
        self.bar = None
        self.unit, self.desc = unit, desc

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc, disable=None, file=sys.stderr)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
