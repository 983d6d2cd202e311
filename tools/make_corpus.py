"""The project's corpus builder as a script: ``python tools/make_corpus.py --root DIR ...`` is
``diffsep corpus --root DIR ...`` (``--help`` lists the voice sources). The bundled models' corpus:

    python tools/make_corpus.py --root data/voices --kokoro-voices kokoro-js/package/voices \\
        --kokoro-mixes 24 --realspeech ../shared/realspeech --recorded-from ../shared/corpus
"""
import sys

from diffsep.cli.corpus import main

if __name__ == "__main__":
    sys.exit(main())
