"""Training corpus for the models diffsep ships: only freely licensed synthetic voices.

Development tool, not used at run time or in CI. It drives the shared corpus generator
(``make_corpus.py``, given with ``--generator``) with flite, festival and espeak-ng voices only
(no MBROLA, no recorded prompt packages), and adds the espeak-ng voice variants as further
speakers. flite's ``awb`` voice is left out: it is a speaker of the shared corpus's tt split,
which stays the test set of unseen speakers.

    python tools/make_free_corpus.py --generator PATH/make_corpus.py --root DIR \
        --n-tr 3000 --n-cv 100 --utts-per-voice 40

``--voices`` picks the voices: ``stage1`` (the 72 of the bundled models' first stage), ``recorded``
(16 flite and festival voices made from recorded speakers, including festival voices of other
languages reading the English text) or ``all``. Every other option goes to the generator
unchanged, except that ``--tr-voices`` defaults to the picked voices and ``--splits`` to ``tr,cv``.
The generator's synthesis and mixing show progress bars with an ETA (``--quiet``: none).
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
# Further recorded-speaker voices from Debian main (festival diphone / HTS / clunits voices of
# other languages reading the English text, and flite's rms): voice id -> (festival voice or
# flite voice, sex, package). hi/mr/te NSK are one speaker and crash on English text: left out.
EXTRA_FESTIVAL = {
    "fest-ona": ("upc_ca_ona_hts", "F", "festvox-ca-ona-hts"),
    "fest-dita": ("czech_dita", "F", "festvox-czech-dita"),
    "fest-krb": ("czech_krb", "M", "festvox-czech-krb"),
    "fest-machac": ("czech_machac", "M", "festvox-czech-machac"),
    "fest-ph": ("czech_ph", "M", "festvox-czech-ph"),
    "fest-mv": ("hy_fi_mv_diphone", "M", "festvox-suopuhe-mv"),
    "fest-lj": ("suo_fi_lj_diphone", "F", "festvox-suopuhe-lj"),
    "fest-lp": ("lp_diphone", "F", "festvox-italp16k"),
    "fest-pc": ("pc_diphone", "M", "festvox-itapc16k"),
    "fest-nsh": ("msu_ru_nsh_clunits", "M", "festvox-ru"),
}
FESTIVAL_VOICES = Path("/usr/share/festival/voices")


def register_extra(gen) -> list[str]:
    """Adds the voices of EXTRA_FESTIVAL and flite's rms to the generator's registry; returns the
    ids of those installed here."""
    for vid, (fv, sex, pkg) in EXTRA_FESTIVAL.items():
        # pitch through sox: the LR intonation setting only exists for some of these voices
        gen._reg(vid, vid[5:], sex, "festival", "en-US", None, f"festival {pkg}", fest_voice=fv,
                 f0=120, pitch="sox")
    gen._reg("flite-rms", "rms", "M", "flite", "en-US", 16000, "flite", flite_voice="rms", f0=110,
             pitch="native")
    known = gen.voice_available

    def available(v):
        if v["family"] == "festival" and v["id"] in EXTRA_FESTIVAL:
            return any(FESTIVAL_VOICES.glob(f"*/{v['fest_voice']}"))
        return known(v)

    gen.voice_available = available
    synth = gen.synth_native

    def synth_native(spec, tmp):
        # the Italian diphone voices crash on some English questions: read them as statements
        try:
            return synth(spec, tmp)
        except Exception:
            if spec["voice"] not in EXTRA_FESTIVAL or "?" not in spec.get("text", ""):
                raise
            return synth({**spec, "text": spec["text"].replace("?", ".")}, tmp)

    gen.synth_native = synth_native  # worker processes are forked: they see the patched module
    return [v for v in [*EXTRA_FESTIVAL, "flite-rms"] if available(gen.VOICES[v])]


def progress_pool(show: bool = True):
    """A multiprocessing Pool class whose ``map`` shows a progress bar with an ETA on stderr (the
    generator's long steps, synthesis and mixing, are ``Pool.map`` calls); same results, in order."""
    from multiprocessing.pool import Pool

    from tqdm import tqdm

    class ProgressPool(Pool):
        def map(self, func, iterable, chunksize=None):
            items = list(iterable)
            done = self.imap(func, items, chunksize or 1)
            return list(tqdm(done, total=len(items), desc=getattr(func, "__name__", "map"), unit="job",
                             disable=not show))

    return ProgressPool


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", required=True, help="path of make_corpus.py")
    ap.add_argument("--voices", choices=["all", "stage1", "recorded"], default="all",
                    help="all free voices; the 72 of the bundled models' first stage (flite, "
                         "festival English voices, espeak-ng variants); or only the voices made "
                         "from recorded speakers (flite, festival)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a, rest = ap.parse_known_args(argv)
    # imported by name so that the generator's worker processes can pickle its functions
    sys.path.insert(0, str(Path(a.generator).resolve().parent))
    gen = importlib.import_module(Path(a.generator).stem)
    gen.Pool = progress_pool(not a.quiet)
    for var, sex in ESPEAK_VARIANTS.items():
        vid = f"esp-{var}"
        if vid not in gen.VOICES:
            gen._reg(vid, f"espeak-{var}", sex, "espeak", "en-US", None, "espeak-ng",
                     espeak_voice=f"en-us+{var}")
    recorded = OTHER_FREE + register_extra(gen)
    espeak = [f"esp-{v}" for v in ESPEAK_VARIANTS]
    voices = {"all": recorded + espeak, "stage1": OTHER_FREE + espeak, "recorded": recorded}[a.voices]
    if "--tr-voices" not in rest:
        rest += ["--tr-voices", ",".join(voices)]
    if "--splits" not in rest:
        rest += ["--splits", "tr,cv"]
    gen.main(["--preset", "none", "--vbd-n-train", "0", "--vbd-n-test", "0"] + rest)

if __name__ == "__main__":
    sys.exit(main())
