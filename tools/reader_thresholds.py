"""Choose the prompt reader's similarity thresholds (kinema.world.reading.THRESHOLDS)
from train wordings only.

Positives: every lexicon word (grammar words and TRAIN wordings of kinema.world.paraphrase)
left out in turn and matched to the nearest remaining one; a match is right when it has
the left-out word's meaning. Negatives: out-of-world words below (none of them in the
tests' out-of-world prompts, none a held-out wording; verbs of motion such as walking or
flying are left out: reading them as motion is right). For each family the threshold is
just above the nearest negative that lands in it, so no tuning negative is read as a
word of the world; motions count only verb forms (the reader gives a motion's meaning
only to a word ending in -ing, -s or -ed). It prints how many right positives each
threshold keeps.

    PYTHONPATH=src python tools/reader_thresholds.py
"""

from __future__ import annotations

import numpy as np

from kinema.render.reading import minilm_embed
from kinema.world.reading import LEXICON, THRESHOLDS, VERB_ENDINGS

NEGATIVES = """
horse cow sheep lion tiger bear monkey elephant giraffe rabbit mouse fish shark whale
eagle owl duck chicken frog snake spider butterfly bee ant
man woman child boy girl baby teacher doctor soldier king queen crowd family friend
house car truck bus train plane boat ship bicycle road bridge street city village
mountain hill valley lake sea river beach island desert jungle forest garden park
sun moon star cloud rain snow storm wind fire smoke sky weather sunset sunrise
table chair bed door window lamp book pen phone computer television camera clock
bread cheese apple banana cake coffee tea wine soup rice
guitar violin drum song music dance movie painting poem story
love fear anger joy peace war money time history future dream memory
eating drinking singing reading writing cooking talking laughing crying fighting thinking
beautiful ugly happy sad angry old young rich poor famous strange
maison voiture arbre soleil fleur gato perro casa ciudad hund katze baum stadt
""".split()


def main() -> None:
    words = sorted(LEXICON)
    meanings = np.array([LEXICON[w] for w in words])
    families = np.array([m.split(":")[0] for m in meanings])
    lexicon = minilm_embed(words)
    sims = lexicon @ lexicon.T
    np.fill_diagonal(sims, -1.0)
    nearest = sims.argmax(1)
    right = meanings[nearest] == meanings
    outside = [w for w in NEGATIVES if w not in LEXICON]
    negatives = minilm_embed(outside) @ lexicon.T
    verbal = np.array([w.endswith(VERB_ENDINGS) for w in outside])
    motion = np.isin(families, ["motion", "mover"])
    negatives[np.ix_(~verbal, motion)] = -1.0  # a noun never takes a motion's meaning
    neg_best = negatives.argmax(1)
    neg_sim = negatives.max(1)
    print(f"left-out lexicon words matched right: {right.sum()}/{len(words)}")
    for family in sorted(set(families)):
        in_family = families == family
        pos = np.sort(sims.max(1)[in_family & right])
        neg = neg_sim[families[neg_best] == family]
        loudest = [outside[i] for i in np.argsort(-neg_sim) if families[neg_best[i]] == family][:3]
        chosen = THRESHOLDS[family]
        kept = int((pos >= chosen).sum())
        top = f"{neg.max():.2f} ({', '.join(loudest)})" if len(neg) else "none"
        print(
            f"{family:16s} right positives {len(pos):3d}, kept at {chosen:.2f}: {kept:3d}; "
            f"nearest negative {top}; suggests {max(0.5, (neg.max() if len(neg) else 0) + 0.01):.2f}"
        )


if __name__ == "__main__":
    main()
