"""Names that become file or folder names. A checkpoint is untrusted input (it may come from the
Hub): the names it gives its sources (a music model's stems, the output folders of ``separate``)
must be plain names, and a path built from names must stay inside the folder it is built in.

    plain_name_problem("vocals")       # None
    plain_name_problem("../x")         # 'it holds a path separator'
    path_within(outdir, "vocals", "song.wav")   # outdir/vocals/song.wav, or ValueError
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

NAME_MAX = 255  # characters in a file name on common file systems


def plain_name_problem(name) -> str | None:
    """Why ``name`` is not a plain file name (one path component, no way out of its folder on any
    system), or None when it is one."""
    if not isinstance(name, str):
        return f"a {type(name).__name__}, not a string"
    if not name.strip():
        return "it is empty"
    if name in (".", ".."):
        return "it names a folder itself ('.' or '..')"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if ":" in name or PureWindowsPath(name).is_absolute() or PurePosixPath(name).is_absolute():
        return "it names a drive or an absolute path"
    if len(name) > NAME_MAX:
        return f"it is longer than {NAME_MAX} characters"
    return None


def check_plain_names(names, what: str) -> None:
    """Raise ValueError, in one sentence, unless every one of ``names`` is a plain file name and no
    two are the same (also ignoring case: they would be one file on many systems). ``what`` says
    where the names come from (``data.stems``)."""
    seen: dict[str, str] = {}
    for name in names:
        problem = plain_name_problem(name)
        if problem:
            raise ValueError(f"{what}: {name!r} is not a plain file name ({problem})")
        if name.casefold() in seen:
            raise ValueError(f"{what}: {seen[name.casefold()]!r} and {name!r} would be the same file name")
        seen[name.casefold()] = name


def path_within(folder, *parts: str) -> Path:
    """``folder / part / ...``, refusing (ValueError) a part that is absolute or climbs out with
    '..', so the path stays inside ``folder`` whatever the parts are. (A part may hold sub-folders:
    an input's relative path.) Checked on the names, not by resolving links, so a folder the user
    linked into ``folder`` on purpose still works."""
    for part in parts:
        p = PurePosixPath(str(part).replace("\\", "/"))
        if (not str(part) or p.is_absolute() or PureWindowsPath(str(part)).is_absolute()
                or ".." in p.parts or any(ord(c) < 32 for c in str(part))):
            raise ValueError(f"{part!r} would leave the output folder {folder}")
    return Path(folder).joinpath(*parts)
