#!/usr/bin/env python3
"""Extract the King James Bible from Debian's bible-kjv package into one verse per line.

Every 20th chapter goes to the validation split, so validation text is spread across the whole
book instead of being one stylistically odd tail (Revelation).

    /usr/bin/python3 tools/prepare_corpus.py OUT_DIR        # runs `bible`, writes train.txt, val.txt
    /usr/bin/python3 tools/prepare_corpus.py OUT_DIR --from kjv.txt
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

VALIDATION_EVERY = 20
HEADER = re.compile(r"^\S.* \d+$")          # "Genesis 1", "1 Kings 3", "Song of Solomon 2"
VERSE = re.compile(r"^\s+\d+ (.*)$")       # "  12 And God said, ..."


def read_bible_text(source):
    if source:
        if not os.path.isfile(source):
            sys.exit(f"prepare_corpus: corpus file '{source}' does not exist.")
        with open(source, encoding="utf-8") as f:
            return f.read()
    if shutil.which("bible") is None:
        sys.exit("prepare_corpus: the `bible` command is missing. Install the corpus with:\n"
                 "    sudo apt-get install bible-kjv")
    return subprocess.run(["bible", "-l10000", "gen1:1-rev22:21"], check=True,
                          capture_output=True, text=True).stdout


def split_verses(text):
    """Yields (chapter_index, verse_text)."""
    chapter = -1
    for line in text.splitlines():
        if not line.strip():
            continue
        verse = VERSE.match(line)
        if verse:
            if chapter < 0:
                sys.exit("prepare_corpus: found a verse before any chapter heading; is this `bible -l10000` output?")
            yield chapter, verse.group(1).strip()
        elif HEADER.match(line):
            chapter += 1
        else:
            sys.exit(f"prepare_corpus: unexpected line in the corpus: {line[:80]!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--from", dest="source", help="a file holding `bible -l10000 gen1:1-rev22:21` output")
    args = parser.parse_args()

    verses = list(split_verses(read_bible_text(args.source)))
    if not verses:
        sys.exit("prepare_corpus: the corpus is empty.")
    os.makedirs(args.out_dir, exist_ok=True)
    counts = {"train": 0, "val": 0}
    with open(os.path.join(args.out_dir, "train.txt"), "w", encoding="utf-8") as train, \
         open(os.path.join(args.out_dir, "val.txt"), "w", encoding="utf-8") as val:
        for chapter, verse in verses:
            split = "val" if chapter % VALIDATION_EVERY == VALIDATION_EVERY - 1 else "train"
            (val if split == "val" else train).write(verse + "\n")
            counts[split] += 1
    chapters = verses[-1][0] + 1
    print(f"prepare_corpus: {chapters} chapters, {counts['train']} train verses, {counts['val']} validation verses -> {args.out_dir}")


if __name__ == "__main__":
    main()
