"""Training corpus for the models diffsep ships: only freely licensed synthetic voices.

Development tool, not used at run time or in CI. It drives the shared corpus generator
(``make_corpus.py``, given with ``--generator``) with flite, festival and espeak-ng voices only
(no MBROLA, no recorded prompt packages), and adds the espeak-ng voice variants as further
speakers. flite's ``awb`` voice is left out: it is a speaker of the shared corpus's tt split,
which stays the test set of unseen speakers.

    python tools/make_free_corpus.py --generator PATH/make_corpus.py --root DIR \
        --n-tr 3000 --n-cv 100 --utts-per-voice 40

Every option after ``--generator`` goes to the generator unchanged, except that ``--tr-voices``
defaults to every free voice and ``--splits`` to ``tr,cv``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# espeak-ng variants used as speakers: plain names only (file names use '_' and '-' as
# separators) and no whispered or deliberately distorted voices.
ESPEAK_VARIANTS = {
    "m1": "M", "m2": "M", "m3": "M", "m4": "M", "m5": "M", "m6": "M", "m7": "M", "m8": "M",
    "f1": "F", "f2": "F", "f3": "F", "f4": "F", "f5": "F",
    "Alicia": "F", "Andrea": "F", "Annie": "F", "anika": "F", "aunty": "F", "belinda": "F",
    "grandma": "F", "linda": "F", "steph": "F", "steph2": "F", "steph3": "F",
    "Andy": "M", "Denis": "M", "Diogo": "M", "Henrique": "M", "Hugo": "M", "Lee": "M",
    "Marco": "M", "Storm": "M", "antonio": "M", "michel": "M", "miguel": "M", "sandro": "M",
    "travis": "M", "victor": "M", "Alex": "M", "Gene": "M", "Jacky": "M", "Michael": "M",
    "Mike": "M", "adam": "M", "benjamin": "M", "boris": "M", "caleb": "M", "david": "M",
    "ed": "M", "edward": "M", "grandpa": "M", "gustave": "M", "iven": "M", "john": "M",
    "klatt": "M", "klatt2": "M", "klatt3": "M", "max": "M", "norbert": "M", "pablo": "M",
    "paul": "M", "pedro": "M", "quincy": "M", "rob": "M", "robert": "M", "shelby": "F",
    "zac": "M",
}
OTHER_FREE = ["flite-kal16", "flite-slt", "fest-kal", "fest-ked", "fest-slt"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", required=True, help="path of make_corpus.py")
    a, rest = ap.parse_known_args(argv)
    # imported by name so that the generator's worker processes can pickle its functions
    sys.path.insert(0, str(Path(a.generator).resolve().parent))
    gen = importlib.import_module(Path(a.generator).stem)
    for var, sex in ESPEAK_VARIANTS.items():
        vid = f"esp-{var}"
        if vid not in gen.VOICES:
            gen._reg(vid, f"espeak-{var}", sex, "espeak", "en-US", None, "espeak-ng",
                     espeak_voice=f"en-us+{var}")
    voices = OTHER_FREE + [f"esp-{v}" for v in ESPEAK_VARIANTS]
    if "--tr-voices" not in rest:
        rest += ["--tr-voices", ",".join(voices)]
    if "--splits" not in rest:
        rest += ["--splits", "tr,cv"]
    gen.main(["--preset", "none", "--vbd-n-train", "0", "--vbd-n-test", "0"] + rest)


if __name__ == "__main__":
    sys.exit(main())
