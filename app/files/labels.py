"""Class labels as uploads give them: whole numbers 0..MAX_CLASSES-1 are class indices, any
other labels are class names (sorted: the name's place is its index)."""

from app.files.formats import MAX_CLASSES, CheckError


class Labels:
    """Collects a file's labels (as strings, in a first pass), then maps each to its index."""

    def __init__(self, where: str) -> None:
        self.where = where  # e.g. "column 'label'", for messages
        self.seen: set[str] = set()
        self.integers = True

    def add(self, label: str, row: int) -> None:
        if not label:
            raise CheckError(f"{self.where} row {row} is empty")
        if label in self.seen:
            return
        self.seen.add(label)
        if len(self.seen) > MAX_CLASSES:
            raise CheckError(f"{self.where} holds over {MAX_CLASSES} classes")
        if not self.integers:
            return
        try:
            value = int(label)
        except ValueError:
            self.integers = False
            return
        if value < 0 or value >= MAX_CLASSES:
            raise CheckError(
                f"{self.where} row {row} holds class {value}; "
                f"integer labels must be 0..{MAX_CLASSES - 1}"
            )

    def index(self) -> tuple[int, list[str] | None, dict[str, int]]:
        """(num_classes, class_names or None for integer labels, label -> index)."""
        if self.integers:
            num_classes = max(int(v) for v in self.seen) + 1 if self.seen else 0
            names, index = None, {v: int(v) for v in self.seen}
        else:
            names = sorted(self.seen)
            num_classes, index = len(names), {v: i for i, v in enumerate(names)}
        if num_classes < 2:
            raise CheckError(
                f"{self.where} holds {num_classes} class; a classifier needs at least 2"
            )
        return num_classes, names, index
